"""Expand an occurrence into one delivery per target endpoint, in batches that commit with
their log entries; a repeated or interrupted fan-out never creates a second delivery."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, Row, TextClause, bindparam, select, text, update

from channels.endpoints import resolve_targets
from channels.states import MISSED, PENDING
from coso.clock import as_utc
from coso.db import chunks, write
from coso.units import UnitTree, unit_tree
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.outcome_counts import FirstKey, OutcomeChanges, count_first_grouped
from dispatcher.rotation_picks import picks
from dispatcher.transitions import LOG_SOURCE, append_log, duration_text, log_rows
from schedules.models import MISSED as OCC_MISSED
from schedules.models import PRIORITIES, Occurrence, Schedule
from schedules.session_store import only_placed, placed_units

D = Delivery.__table__
LOG = ActivityEntry.__table__
O = Occurrence.__table__  # noqa: E741
S = Schedule.__table__


def fan_out_pending(engine: Engine, now: datetime, batch: int) -> int:
    """Fan out every occurrence not yet fanned out; returns deliveries created. The unit
    tree is read once for them all (reading it is most of a small occurrence's fan-out)."""
    with engine.connect() as conn:
        pending = conn.scalars(
            select(O.c.id).where(O.c.fanned_out_at.is_(None)).order_by(O.c.scheduled_for)
        ).all()
    if not pending:
        return 0
    tree = unit_tree(engine)
    return sum(fan_out(engine, occurrence_id, now, batch, tree) for occurrence_id in pending)


def fan_out(
    engine: Engine, occurrence_id: int, now: datetime, batch: int, tree: UnitTree | None = None
) -> int:
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
        # Due at its slot; one fired ahead of it (its channel's devices start it at its time
        # themselves: the timer's cue) goes out at once.
        "next_attempt_at": min(as_utc(occ.scheduled_for), as_utc(occ.fired_at)),
        "expires_at": occ.expires_at,
        "created_at": now,
        "updated_at": now,
    }
    created = 0
    targets = resolve_targets(engine, sch.channel, sch.targets, tree)
    if sch.queue is not None:  # queued into sessions: the units placed in this one
        targets = only_placed(
            targets, placed_units(engine, sch.id).get(as_utc(occ.scheduled_for), set())
        )
    # A rotation: each endpoint's item, as its history there says.
    groups = picks(engine, sch, targets).items() if sch.rotation else [(sch.content_id, targets)]
    parts = [(content_id, part) for content_id, group in groups for part in chunks(group, batch)]
    entry = {"at": now, "event": "queued", "state": PENDING, "actor": "timer", "detail": None}
    if missed:
        late = duration_text(timedelta(seconds=occ.late_seconds))
        entry |= {"event": "missed", "state": MISSED}
        entry["detail"] = f"coso was not running at the slot; back {late} later, past the grace"
    for content_id, part in parts:
        with write(engine) as conn:
            values = base | {"content_id": content_id}
            if conn.dialect.name == "postgresql":
                created += _insert_logged_batch(conn, values, part, entry)
                continue
            inserted = _insert_batch(conn, values, part)
            append_log(conn, log_rows(inserted, **entry), first=True)
        created += len(inserted)
    with write(engine) as conn:
        conn.execute(update(O).where(O.c.id == occ.id).values(fanned_out_at=now))
    return created


# Constant columns of a batch, then the two that vary per endpoint.
_BASE_COLUMNS = (
    "occurrence_id",
    "plan_id",
    "schedule_id",
    "content_id",
    "channel",
    "priority",
    "scheduled_for",
    "state",
    "attempts",
    "next_attempt_at",
    "expires_at",
    "created_at",
    "updated_at",
)
_SOURCES = {
    # One statement per batch whatever its size: the endpoints travel as two arrays (or one
    # JSON array on SQLite), so the SQL text stays short and the driver does not re-parse it.
    "postgresql": "SELECT {base}, src.endpoint_id, src.unit_code FROM unnest("
    "CAST(:endpoint_ids AS integer[]), CAST(:unit_codes AS varchar[])) "
    "AS src(endpoint_id, unit_code)",
    "sqlite": "SELECT {base}, json_extract(value, '$[0]'), json_extract(value, '$[1]') "
    "FROM json_each(:pairs) WHERE true",
}


def _insert_new(dialect: str) -> str:
    """INSERT of the deliveries of a batch that are not there yet."""
    source = _SOURCES[dialect].format(base=", ".join(f":{c}" for c in _BASE_COLUMNS))
    columns = ", ".join((*_BASE_COLUMNS, "endpoint_id", "unit_code"))
    return (
        f"INSERT INTO delivery ({columns}) {source} "
        "ON CONFLICT (occurrence_id, endpoint_id) DO NOTHING"
    )


_BASE_PARAMS = tuple(bindparam(c, type_=D.c[c].type) for c in _BASE_COLUMNS)


@cache
def _logged_statement() -> TextClause:
    """PostgreSQL: the new deliveries feed their first log entries (a data-modifying WITH);
    what comes back is their count per occurrence, plan, channel, unit and content."""
    sql = (
        f"WITH new AS ({_insert_new('postgresql')} RETURNING id, plan_id, schedule_id, "
        "occurrence_id, content_id, channel, unit_code, endpoint_id), "
        "logged AS (INSERT INTO activity_entry (at, plan_id, schedule_id, occurrence_id, "
        "delivery_id, content_id, channel, unit_code, endpoint_id, event, state, actor, detail) "
        "SELECT :at, plan_id, schedule_id, occurrence_id, id, content_id, channel, unit_code, "
        "endpoint_id, CAST(:event AS varchar), CAST(:state AS varchar), "
        "CAST(:actor AS varchar), CAST(:detail AS varchar) FROM new ORDER BY id) "
        "SELECT occurrence_id, plan_id, channel, unit_code, content_id, count(*) FROM new "
        "GROUP BY occurrence_id, plan_id, channel, unit_code, content_id"
    )
    return text(sql).bindparams(*_BASE_PARAMS, bindparam("at", type_=LOG.c.at.type))


@cache
def _returning_statement() -> TextClause:
    """SQLite: the new deliveries come back, for the log (no data-modifying WITH there)."""
    returning = ", ".join(c.name for c in LOG_SOURCE)
    sql = f"{_insert_new('sqlite')} RETURNING {returning}"
    return text(sql).bindparams(*_BASE_PARAMS).columns(*LOG_SOURCE)


def _insert_logged_batch(
    conn: Connection,
    base: dict[str, Any],
    part: Sequence[tuple[int, str | None]],
    entry: dict[str, Any],
) -> int:
    """PostgreSQL: the deliveries of `part` not yet there and their first log entries in one
    statement; only the counts per unit come back (for the outcome counts). Returns how many
    deliveries were created."""
    params = base | {
        "endpoint_ids": [eid for eid, _ in part],
        "unit_codes": [unit for _, unit in part],
        **entry,
    }
    grouped: Counter[FirstKey] = Counter()
    rows = conn.execute(_logged_statement(), params)
    for occurrence_id, plan_id, channel, unit, content_id, n in rows:
        key = (occurrence_id, plan_id, channel, unit, content_id, entry["state"], entry["event"])
        grouped[key] += n
    changes = OutcomeChanges()
    count_first_grouped(conn, grouped, changes)
    changes.save(conn)
    return sum(grouped.values())


def _insert_batch(
    conn: Connection, base: dict[str, Any], part: Sequence[tuple[int, str | None]]
) -> list[Row[Any]]:
    """SQLite: insert the deliveries of `part` not yet there; return just the new ones (for
    the log, which SQLite cannot write in the same statement)."""
    params = base | {"pairs": json.dumps(list(part))}
    return list(conn.execute(_returning_statement(), params).all())
