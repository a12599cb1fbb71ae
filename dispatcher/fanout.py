"""Expand an occurrence into one delivery per target endpoint, in batches that commit with
their log entries; a repeated or interrupted fan-out never creates a second delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select, update

from channels.endpoints import resolve_targets
from coso.db import chunks, insert_ignoring_duplicates, write
from dispatcher.models import Delivery
from dispatcher.states import MISSED, PENDING
from dispatcher.transitions import LOG_SOURCE, append_log, log_rows
from schedules.models import MISSED as OCC_MISSED
from schedules.models import PRIORITIES, Occurrence, Schedule

D = Delivery.__table__
O = Occurrence.__table__  # noqa: E741
S = Schedule.__table__


def fan_out_pending(engine: Engine, now: datetime, batch: int) -> int:
    """Fan out every occurrence not yet fanned out; returns deliveries created."""
    with engine.connect() as conn:
        pending = conn.scalars(
            select(O.c.id).where(O.c.fanned_out_at.is_(None)).order_by(O.c.scheduled_for)
        ).all()
    return sum(fan_out(engine, occurrence_id, now, batch) for occurrence_id in pending)


def fan_out(engine: Engine, occurrence_id: int, now: datetime, batch: int) -> int:
    with engine.connect() as conn:
        occ = conn.execute(select(O).where(O.c.id == occurrence_id)).one()
        sch = conn.execute(select(S).where(S.c.id == occ.schedule_id)).one()
    missed = occ.status == OCC_MISSED
    state = MISSED if missed else PENDING
    base = {
        "occurrence_id": occ.id,
        "plan_id": sch.plan_id,
        "schedule_id": sch.id,
        "content_id": sch.content_id,
        "channel": sch.channel,
        "priority": PRIORITIES.get(sch.priority, 0),
        "scheduled_for": occ.scheduled_for,
        "state": state,
        "attempts": 0,
        "next_attempt_at": occ.scheduled_for,
        "expires_at": occ.expires_at,
        "created_at": now,
        "updated_at": now,
    }
    created = 0
    targets = resolve_targets(engine, sch.channel, sch.targets)
    for part in chunks(targets, batch):
        rows = [{**base, "endpoint_id": eid, "unit_code": unit} for eid, unit in part]
        with write(engine) as conn:
            inserted = conn.execute(
                insert_ignoring_duplicates(conn, D).returning(*LOG_SOURCE), rows
            ).all()
            if missed:
                entries = log_rows(
                    inserted,
                    at=now,
                    event="missed",
                    state=MISSED,
                    actor="timer",
                    detail=f"service was down; {occ.late_seconds}s past the slot",
                )
            else:
                entries = log_rows(inserted, at=now, event="queued", state=PENDING, actor="timer")
            append_log(conn, entries)
        created += len(inserted)
    with write(engine) as conn:
        conn.execute(update(O).where(O.c.id == occ.id).values(fanned_out_at=now))
    return created
