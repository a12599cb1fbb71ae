"""Turn schedules of record into occurrences: each fire time once, late or missed as the
schedule's misfire grace says."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from coso.db import insert_ignoring_duplicates, write
from schedules.models import DUE, MISSED, Occurrence, Schedule
from schedules.timing import timing_of

S = Schedule.__table__
O = Occurrence.__table__  # noqa: E741
log = logging.getLogger(__name__)

# Fire times one schedule may add in one pass, and hold in the timer's horizon: a schedule
# firing more often than this (stored before its channel's bounds were checked) catches up
# over several passes instead of holding up the others.
MOST_PER_PASS = 1000
MOST_AHEAD = 500


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
        try:
            created += _fire_one(engine, sch, now)
        except Exception:  # one schedule's fault must not keep the others from firing
            log.exception("schedule %s (%s): firing failed; the others go on", sch.id, sch.name)
    return created


def _fire_one(engine: Engine, sch: Any, now: datetime) -> int:
    """Occurrences of one schedule due by `now`, at most MOST_PER_PASS of them."""
    times = timing_of(sch).fire_times(sch.fired_through, now, most=MOST_PER_PASS)
    if not times:
        return 0  # nothing fell due: no write, so the timer can ask as often as it likes
    # Capped: recorded up to the last time taken; the rest follow at the next pass.
    through = times[-1] if len(times) >= MOST_PER_PASS else now
    rows = []
    for when in times:
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
    with write(engine) as conn:
        result = conn.execute(insert_ignoring_duplicates(conn, O).returning(O.c.id), rows)
        created = len(result.all())
        conn.execute(
            update(S)
            .where(S.c.id == sch.id, S.c.fired_through < through)
            .values(fired_through=through)
        )
    return created


def next_fire_times(engine: Engine, after: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """(schedule id, UTC time) of every enabled schedule firing in (after, until]."""
    with engine.connect() as conn:
        schedules = conn.execute(select(S).where(S.c.enabled.is_(True))).all()
    out = []
    for sch in schedules:
        start = max(after, sch.fired_through)
        try:
            times = timing_of(sch).fire_times(start, until, most=MOST_AHEAD)
        except Exception:
            log.exception("schedule %s (%s): its next times are unknown", sch.id, sch.name)
            continue
        out += [(sch.id, t) for t in times]
    return sorted(out, key=lambda x: x[1])
