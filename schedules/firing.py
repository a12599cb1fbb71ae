"""Turn schedules of record into occurrences: each fire time once, late or missed as the
schedule's misfire grace says."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from coso.db import insert_ignoring_duplicates, write
from schedules.models import DUE, MISSED, Occurrence, Schedule
from schedules.timing import timing_of

S = Schedule.__table__
O = Occurrence.__table__  # noqa: E741


def fire_due(engine: Engine, now: datetime) -> int:
    """Create an occurrence for every fire time in (fired_through, now] of each enabled schedule.

    Safe to call any number of times, from any number of processes: occurrences are unique
    on (schedule, scheduled_for), and `fired_through` only moves forward.
    """
    created = 0
    with engine.connect() as conn:
        schedules = conn.execute(
            select(S).where(S.c.enabled.is_(True), S.c.fired_through < now)
        ).all()
    for sch in schedules:
        rows = []
        for when in timing_of(sch).fire_times(sch.fired_through, now):
            late = now - when
            missed = late > timedelta(seconds=sch.misfire_grace_seconds)
            rows.append(
                {
                    "schedule_id": sch.id,
                    "scheduled_for": when,
                    "status": MISSED if missed else DUE,
                    "fired_at": now,
                    "late_seconds": max(0, int(late.total_seconds())),
                    "expires_at": when + timedelta(seconds=sch.validity_seconds)
                    if sch.validity_seconds
                    else None,
                }
            )
        if not rows:
            continue  # nothing fell due: no write, so the timer can ask as often as it likes
        with write(engine) as conn:
            result = conn.execute(insert_ignoring_duplicates(conn, O).returning(O.c.id), rows)
            created += len(result.all())
            conn.execute(
                update(S).where(S.c.id == sch.id, S.c.fired_through < now).values(fired_through=now)
            )
    return created


def next_fire_times(engine: Engine, after: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """(schedule id, UTC time) of every enabled schedule firing in (after, until]."""
    with engine.connect() as conn:
        schedules = conn.execute(select(S).where(S.c.enabled.is_(True))).all()
    out = []
    for sch in schedules:
        start = max(after, sch.fired_through)
        out += [(sch.id, t) for t in timing_of(sch).fire_times(start, until)]
    return sorted(out, key=lambda x: x[1])
