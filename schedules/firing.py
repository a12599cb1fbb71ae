"""Turn schedules of record into occurrences: each fire time once, late or missed as the
schedule's misfire grace says.

`fire_due` reads the schedules and expands their rules: a pass over all of them (at a tick, in
tests and benchmarks) or over a few. `fire_slot` is the timer's fast path: it fires at one
time the schedules the timer expected then, writing their occurrences in one transaction, and
hands any schedule that is not as the timer read it to `fire_due`."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from coso.clock import Clock, as_utc
from coso.db import chunks, insert_ignoring_duplicates, write
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
# What a schedule's times depend on: the timer compares them with what it expanded.
TIMING_COLUMNS = (
    S.c.updated_at,
    S.c.start_local,
    S.c.rrule,
    S.c.until_local,
    S.c.exdates_local,
    S.c.rdates_local,
    S.c.zone,
)
SLOT_BATCH = 500  # schedules read (and by `fire_slot` written) at a time
ROWS_PER_WRITE = 5000  # occurrences `fire_due` writes per transaction, about
# fired_through only moves forward.
_MOVE_FIRED_THROUGH = (
    update(S)
    .where(S.c.id == bindparam("sid"), S.c.fired_through < bindparam("through"))
    .values(fired_through=bindparam("through"))
)


def timing_version(row: Any) -> tuple[object, ...]:
    """What the times of a schedule row depend on (its TIMING_COLUMNS), comparable between
    two reads: the stamp in UTC, the lists of times as tuples."""
    return tuple(_comparable(getattr(row, c.name)) for c in TIMING_COLUMNS)


def _comparable(value: Any) -> object:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def fire_due(
    engine: Engine,
    now: datetime,
    *,
    clock: Clock | None = None,
    ids: Collection[int] | None = None,
) -> int:
    """Create an occurrence for every fire time in (fired_through, now] of each enabled schedule
    (of those in `ids`, when given).

    Safe to call any number of times, from any number of processes: occurrences are unique
    on (schedule, scheduled_for), and `fired_through` only moves forward. `fired_at` is the
    time of `clock` when the occurrences are written (`now` without a clock).
    """
    query = select(S).where(S.c.enabled.is_(True), S.c.fired_through < now)
    if ids is None:
        parts = [query]
    else:
        parts = [query.where(S.c.id.in_(part)) for part in chunks(sorted(ids), SLOT_BATCH)]
    created = 0
    for part in parts:
        with engine.connect() as conn:
            rows = conn.execute(part).all()
        due = [(sch, times) for sch in rows if (times := _due_times(sch, now))]
        for batch in _batches(due):
            try:
                created += _write(engine, batch, now, clock)
            except Exception:  # one schedule's fault must not keep the others from firing
                for one in batch:
                    try:
                        created += _write(engine, [one], now, clock)
                    except Exception:
                        sch = one[0]
                        log.exception(
                            "schedule %s (%s): firing failed; the others go on", sch.id, sch.name
                        )
    return created


def _due_times(sch: Any, now: datetime) -> list[datetime]:
    """Fire times of one schedule due by `now`, at most MOST_PER_PASS of them."""
    try:
        return timing_of(sch).fire_times(sch.fired_through, now, most=MOST_PER_PASS)
    except Exception:
        log.exception("schedule %s (%s): its times are unknown; the others go on", sch.id, sch.name)
        return []


def _batches(due: list[tuple[Any, list[datetime]]]) -> Iterator[list[tuple[Any, list[datetime]]]]:
    """Schedules and their times, a transaction's worth at a time (ROWS_PER_WRITE rows)."""
    batch: list[tuple[Any, list[datetime]]] = []
    rows = 0
    for one in due:
        batch.append(one)
        rows += len(one[1])
        if rows >= ROWS_PER_WRITE:
            yield batch
            batch, rows = [], 0
    if batch:
        yield batch


def _write(
    engine: Engine, due: list[tuple[Any, list[datetime]]], now: datetime, clock: Clock | None
) -> int:
    """The occurrences of several schedules in one transaction; each schedule has fired up to
    `now`, or up to the last time taken when it had more than MOST_PER_PASS (the rest follow
    at the next pass)."""
    with write(engine) as conn:
        stamp = clock.now() if clock is not None else now
        rows = [occurrence_row(sch, when, stamp) for sch, times in due for when in times]
        result = conn.execute(insert_ignoring_duplicates(conn, O).returning(O.c.id), rows)
        created = len(result.all())
        conn.execute(
            _MOVE_FIRED_THROUGH,
            [
                {"sid": sch.id, "through": times[-1] if len(times) >= MOST_PER_PASS else now}
                for sch, times in due
            ],
        )
    return created


def occurrence_row(sch: Any, when: datetime, fired_at: datetime) -> dict[str, Any]:
    """The occurrence of schedule row `sch` at `when`, written at `fired_at`."""
    late = fired_at - when
    return {
        "schedule_id": sch.id,
        "scheduled_for": when,
        "status": MISSED if late > timedelta(seconds=sch.misfire_grace_seconds) else DUE,
        "fired_at": fired_at,
        "late_seconds": max(0, int(late.total_seconds())),
        "expires_at": when + timedelta(seconds=sch.validity_seconds)
        if sch.validity_seconds
        else None,
    }


@dataclass(frozen=True)
class Expected:
    """A schedule the timer expects to fire at a slot: the timing it expanded (`version`),
    and its fire time before the slot (`after`), up to which it must have fired already."""

    version: tuple[object, ...]
    after: datetime


def fire_slot(engine: Engine, clock: Clock, when: datetime, due: Mapping[int, Expected]) -> int:
    """The occurrences at `when` of the schedules in `due`; returns how many were created.

    A schedule fires here, in one transaction with the others, when its row is still as the
    timer expanded it and has fired up to its time before `when`; it is skipped when it is off
    or has fired `when` already (another process); otherwise (edited, or behind after a failed
    write) `fire_due` fires it from its row. The rows are read inside the write transaction
    (locked on PostgreSQL), so an edit cannot come between the check and the write."""
    created, behind = 0, []
    for part in chunks(sorted(due), SLOT_BATCH):
        with write(engine) as conn:
            rows = conn.execute(
                select(
                    S.c.id,
                    S.c.enabled,
                    S.c.fired_through,
                    S.c.validity_seconds,
                    S.c.misfire_grace_seconds,
                    *TIMING_COLUMNS,
                )
                .where(S.c.id.in_(part))
                .with_for_update()
            ).all()
            ready = []
            for row in rows:
                expected, fired = due[row.id], as_utc(row.fired_through)
                if not row.enabled or fired >= when:
                    continue
                if fired < expected.after or timing_version(row) != expected.version:
                    behind.append(row.id)
                else:
                    ready.append(row)
            if not ready:
                continue
            stamp = clock.now()  # when the rows are written: what lateness is measured by
            conn.execute(
                insert_ignoring_duplicates(conn, O), [occurrence_row(r, when, stamp) for r in ready]
            )
            conn.execute(_MOVE_FIRED_THROUGH, [{"sid": r.id, "through": when} for r in ready])
            created += len(ready)
    if behind:
        created += fire_due(engine, clock.now(), clock=clock, ids=behind)
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
