"""Delivery states only move forward, whoever reports and in whatever order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from channels.base import Outcome
from coso.clock import ManualClock
from coso.config import Settings
from coso.db import write
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from dispatcher.transitions import apply_outcomes
from schedules.importer import import_plan_file
from tests.helpers import SLOT
from tests.plans import write_plan


def _one_delivery(engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path) -> int:
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    clock.set(SLOT)
    Dispatcher(engine, settings, clock).fire()
    with engine.connect() as conn:
        return conn.scalars(select(Delivery.id).order_by(Delivery.id)).first()  # type: ignore[return-value]


def test_out_of_order_and_unknown_outcomes_are_refused_and_change_nothing(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    delivery_id = _one_delivery(engine, settings, clock, tmp_path)
    at = SLOT + timedelta(minutes=1)
    later = [
        Outcome(delivery_id, "sending", "claimed", at, "test"),
        Outcome(delivery_id, "delivered", "delivered", at, "test"),
        Outcome(delivery_id, "sent", "sent", at, "test"),  # arrives after delivered
        Outcome(delivery_id, "failed", "failed", at, "test", error="30003"),
        Outcome(987654, "delivered", "delivered", at, "test"),  # no such delivery
    ]
    with write(engine) as conn:
        applied, refused = apply_outcomes(conn, later)
    assert [o.state for o in applied] == ["sending", "delivered"]
    assert [(o.delivery_id, o.state) for o in refused] == [
        (delivery_id, "sent"),
        (delivery_id, "failed"),
        (987654, "delivered"),
    ]
    with engine.connect() as conn:
        assert conn.scalar(select(Delivery.state).where(Delivery.id == delivery_id)) == "delivered"
        events = conn.scalars(
            select(ActivityEntry.event)
            .where(ActivityEntry.delivery_id == delivery_id)
            .order_by(ActivityEntry.id)
        ).all()
    assert events == ["queued", "claimed", "delivered"]


def test_outcome_from_another_endpoint_is_refused(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    delivery_id = _one_delivery(engine, settings, clock, tmp_path)
    with engine.connect() as conn:
        endpoint = conn.scalar(select(Delivery.endpoint_id).where(Delivery.id == delivery_id))
    at = SLOT + timedelta(minutes=1)
    with write(engine) as conn:
        apply_outcomes(conn, [Outcome(delivery_id, "sending", "claimed", at, "test")])
        _, refused = apply_outcomes(
            conn,
            [Outcome(delivery_id, "played", "finished", at, "player:x", endpoint_id=endpoint + 1)],
        )
    assert len(refused) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(Delivery.state).where(Delivery.id == delivery_id)) == "sending"


def test_interleaved_outcomes_of_many_deliveries_apply_in_each_deliverys_order(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    """A batch of player events arrives player by player (received, played, received,
    played, ...): every delivery takes its own outcomes in order."""
    first = _one_delivery(engine, settings, clock, tmp_path)
    with engine.connect() as conn:
        ids = conn.scalars(select(Delivery.id).where(Delivery.id >= first)).all()
    assert len(ids) >= 2
    at = SLOT + timedelta(minutes=1)
    batch = []
    for did in ids:
        batch += [
            Outcome(did, "sending", "claimed", at, "test"),
            Outcome(did, "sent", "sent", at, "test"),
            Outcome(did, "delivered", "delivered", at, "test"),
        ]
    batch.append(Outcome(ids[0], "sent", "sent", at, "test"))  # a repeat, after delivered
    with write(engine) as conn:
        applied, refused = apply_outcomes(conn, batch)
    assert len(applied) == 3 * len(ids)
    assert [(o.delivery_id, o.state) for o in refused] == [(ids[0], "sent")]
    with engine.connect() as conn:
        states = conn.scalars(select(Delivery.state).where(Delivery.id.in_(ids))).all()
        for did in ids:
            events = conn.scalars(
                select(ActivityEntry.event)
                .where(ActivityEntry.delivery_id == did)
                .order_by(ActivityEntry.id)
            ).all()
            assert events == ["queued", "claimed", "sent", "delivered"]
    assert set(states) == {"delivered"}
