"""A weekly plan run through two simulated weeks: each slot once, each endpoint once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, func, select

from channels.web.channel import BulletinPost
from coso.clock import ManualClock, SystemClock
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.firing import next_fire_times
from schedules.importer import import_plan_file
from schedules.models import Occurrence
from tests.conftest import ServerThread
from tests.plans import write_plan


def run_until(dispatcher: Dispatcher, clock: ManualClock, end: datetime) -> None:
    """Drive the engine as the timer would: at every fire time, and every 6 hours between."""
    engine = dispatcher.engine
    fire_times = [t for _, t in next_fire_times(engine, clock.now(), end)]
    stops = sorted(set(fire_times) | {clock.now() + timedelta(hours=6 * i) for i in range(1, 60)})
    for stop in stops:
        if stop > end:
            break
        clock.set(stop)
        dispatcher.tick()


def test_weekly_plan_over_two_weeks_fires_each_slot_once_to_each_endpoint(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    plan = import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    dispatcher = Dispatcher(engine, settings, clock)
    run_until(dispatcher, clock, clock.now() + timedelta(days=14))
    dispatcher.tick()  # a repeated fire at the same instant changes nothing

    # Mon and Thu 06:00 in Asia/Ho_Chi_Minh are 23:00 UTC the evening before.
    expected = [datetime(2021, 5, d, 23, 0, tzinfo=UTC) for d in (2, 5, 9, 12)]
    with engine.connect() as conn:
        occurrences = conn.scalars(
            select(Occurrence.scheduled_for).order_by(Occurrence.scheduled_for)
        ).all()
        assert occurrences == expected
        states = conn.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        assert dict(states) == {"delivered": 12}
        pairs = conn.execute(select(Delivery.occurrence_id, Delivery.endpoint_id)).all()
        assert len(set(pairs)) == 12
        events = conn.execute(
            select(ActivityEntry.event, func.count())
            .where(ActivityEntry.plan_id == plan.id)
            .group_by(ActivityEntry.event)
        ).all()
        assert dict(events) == {"queued": 12, "published": 12}
        published_at = conn.scalars(
            select(ActivityEntry.at).where(ActivityEntry.event == "published").distinct()
        ).all()
        assert sorted(published_at) == expected  # published at the slot, not late
        assert conn.scalar(select(func.count()).select_from(BulletinPost)) == 12

    with ServerThread(create_app(engine, settings)) as server:
        page = httpx.get(f"{server.url}/bulletin", params={"unit": "06040"})
        assert page.status_code == 200
        assert page.text.count("Thủ tục mới — Xã Thất Khê") == 4
        assert "Thứ hai 03/05/2021 06:00" in page.text
        feed = httpx.get(f"{server.url}/bulletin.atom")
        assert feed.headers["content-type"].startswith("application/atom+xml")
        assert feed.text.count("<entry>") == 12


def test_timer_picks_up_a_plan_imported_while_it_runs_and_fires_it_on_time(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    clock = SystemClock()
    data = settings.model_dump()
    data["timer"]["reconcile_every"] = "1s"
    dispatcher = Dispatcher(engine, Settings(**data), clock)
    dispatcher.start()
    try:
        assert dispatcher.timer is not None and dispatcher.timer.pending_jobs() == []
        slot = (clock.now() + timedelta(seconds=4)).replace(microsecond=0)
        local = slot.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        text = (
            write_plan(tmp_path)
            .read_text()
            .replace("start = 2021-05-03T06:00:00", f"start = {local:%Y-%m-%dT%H:%M:%S}")
            .replace('rrule = "FREQ=WEEKLY;BYDAY=MO,TH"\n', "")
            .replace("period_end = 2021-12-31", "period_end = 2099-12-31")
        )
        # As `coso plan import` from another process would, while this one runs.
        import_plan_file(engine, settings, write_plan(tmp_path, text, "oneoff.toml"), clock.now())
        deadline = time.monotonic() + 15
        published: list[datetime] = []
        while time.monotonic() < deadline and len(published) < 3:
            time.sleep(0.1)
            with engine.connect() as conn:
                published = list(conn.scalars(select(BulletinPost.published_at)))
        assert len(published) == 3
        # Fired by its own timer job at the slot, not by a later reconcile round.
        assert all(slot <= at < slot + timedelta(seconds=1) for at in published), (slot, published)
    finally:
        dispatcher.stop()
