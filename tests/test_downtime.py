"""The service down across a slot: late within the grace, missed past it, expired never sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from channels.web.channel import BulletinPost
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.models import ActivityEntry
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.models import Occurrence
from tests.helpers import SLOT, delivery_states
from tests.plans import WEEKLY_PLAN, write_plan


def _plan(tmp_path: Path, grace: str, validity: str) -> Path:
    text = WEEKLY_PLAN.replace('misfire_grace = "30m"', f'misfire_grace = "{grace}"')
    return write_plan(tmp_path, text.replace('validity = "12h"', f'validity = "{validity}"'))


def _back_at(engine: Engine, settings: Settings, clock: ManualClock, when: datetime) -> None:
    """The service was down from before the slot and comes back at `when`."""
    clock.set(when)
    Dispatcher(engine, settings, clock).tick()


def test_service_back_within_grace_sends_late_and_says_so(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, _plan(tmp_path, "30m", "12h"), clock.now())
    _back_at(engine, settings, clock, SLOT + timedelta(minutes=10))
    assert delivery_states(engine) == {"delivered": 3}
    with engine.connect() as conn:
        details = conn.scalars(
            select(ActivityEntry.detail).where(ActivityEntry.event == "published")
        ).all()
        occurrence = conn.execute(select(Occurrence.__table__)).one()
    assert details == ["late by 10m00s"] * 3
    assert occurrence.late_seconds == 600


def test_service_back_after_grace_records_missed_and_sends_nothing(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, _plan(tmp_path, "30m", "12h"), clock.now())
    _back_at(engine, settings, clock, SLOT + timedelta(minutes=45))
    assert delivery_states(engine) == {"missed": 3}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(BulletinPost)) == 0
        logged = conn.execute(select(ActivityEntry.event, ActivityEntry.detail)).all()
    assert (
        logged
        == [("missed", "coso was not running at the slot; back 45m00s later, past the grace")] * 3
    )
    # The next slot (Thu 06:00) goes out normally.
    _back_at(engine, settings, clock, SLOT + timedelta(days=3))
    assert delivery_states(engine) == {"missed": 3, "delivered": 3}


def test_delivery_past_its_expiry_is_expired_and_never_sent(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    # Grace longer than validity: the occurrence fires late, but its deliveries expired.
    import_plan_file(engine, settings, _plan(tmp_path, "2h", "30m"), clock.now())
    _back_at(engine, settings, clock, SLOT + timedelta(minutes=40))
    assert delivery_states(engine) == {"expired": 3}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(BulletinPost)) == 0
        expired = conn.scalars(
            select(ActivityEntry.event).where(ActivityEntry.state == "expired")
        ).all()
    assert expired == ["expired"] * 3


def test_retry_wait_past_expiry_is_expired_not_sent(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    from channels.base import Accepted, Channel, Outbound, TransientSendError

    class Flaky(Channel):
        name = "web"
        resend_safe = True
        calls = 0

        def send(self, message: Outbound) -> Accepted:
            Flaky.calls += 1
            raise TransientSendError("HTTP 503")

    import_plan_file(engine, settings, _plan(tmp_path, "30m", "30s"), clock.now())
    dispatcher = Dispatcher(engine, settings, clock, channels={"web": Flaky()})
    clock.set(SLOT)
    dispatcher.tick()
    assert delivery_states(engine) == {"retry_wait": 3}
    clock.set(SLOT + timedelta(seconds=40))  # retry due after 10 s, but expiry at 30 s
    dispatcher.tick()
    assert delivery_states(engine) == {"expired": 3}
    assert Flaky.calls == 3
