"""The one place delivery states change. Every move is a conditional UPDATE that only
succeeds from an allowed earlier state, and every move that matters is appended to the
activity log in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, text, update

from channels.base import Outcome
from channels.registry import extra_moves
from channels.states import (
    ALLOWED_FROM,
    EXPIRED,
    MISSED,
    PENDING,
    RETRY_WAIT,
    SENDING,
    UNCONFIRMED,
    UNKNOWN,
    WAITING,
)
from coso.db import chunks, sqlite_time
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.outcome_counts import OutcomeChanges, count_first, last_outcomes
from schedules.models import Schedule

D = Delivery.__table__
LOG = ActivityEntry.__table__
LOG_SOURCE = (
    D.c.id,
    D.c.plan_id,
    D.c.schedule_id,
    D.c.occurrence_id,
    D.c.content_id,
    D.c.channel,
    D.c.unit_code,
    D.c.endpoint_id,
    D.c.scheduled_for,
)
# What a claim returns: what building a message reads (times cost the most to read).
CLAIMED = (
    *LOG_SOURCE,
    D.c.priority,
    D.c.attempts,
    D.c.expires_at,
)
# Entries later than this after the slot say how late they were.
LATE_AFTER = timedelta(minutes=1)
NOT_LATE = (PENDING, RETRY_WAIT, EXPIRED, MISSED, UNCONFIRMED)  # these say why themselves


def allowed_sql(to: str) -> str:
    """SQL condition on table `delivery`: may a delivery move to `to` from where it is? The
    moves every channel has, and those a channel's plugin adds for its own deliveries."""
    quoted = ", ".join(f"'{s}'" for s in ALLOWED_FROM[to])  # our own constants
    condition = f"delivery.state IN ({quoted})"
    for channel, extra in extra_moves().items():
        if to in extra:
            more = ", ".join(f"'{s}'" for s in extra[to])
            name = channel.replace("'", "''")
            condition += f" OR (delivery.channel = '{name}' AND delivery.state IN ({more}))"
    return f"({condition})"


def log_rows(
    rows: Iterable[Row[Any]],
    *,
    at: datetime,
    event: str,
    state: str | None,
    actor: str,
    detail: str | None = None,
) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        note = detail
        if state and state not in NOT_LATE and r.scheduled_for:
            note = _with_lateness(note, at - r.scheduled_for, None)
        out.append(
            {
                "at": at,
                "plan_id": r.plan_id,
                "schedule_id": r.schedule_id,
                "occurrence_id": r.occurrence_id,
                "delivery_id": r.id,
                "content_id": r.content_id,
                "channel": r.channel,
                "unit_code": r.unit_code,
                "endpoint_id": r.endpoint_id,
                "event": event,
                "state": state,
                "actor": actor,
                "detail": note,
            }
        )
    return out


# (column, PostgreSQL array type) of every log entry, in order
_LOG_COLUMNS = (
    ("at", "timestamptz"),
    ("plan_id", "integer"),
    ("schedule_id", "integer"),
    ("occurrence_id", "integer"),
    ("delivery_id", "integer"),
    ("content_id", "integer"),
    ("channel", "varchar"),
    ("unit_code", "varchar"),
    ("endpoint_id", "integer"),
    ("event", "varchar"),
    ("state", "varchar"),
    ("actor", "varchar"),
    ("detail", "varchar"),
)
SMALL_LOG = 20  # fewer entries go as a plain INSERT


@cache
def _log_insert(dialect: str) -> Any:
    """One INSERT for any number of entries: their columns as arrays (PostgreSQL) or one
    JSON array of rows (SQLite), so the SQL stays short and is parsed once."""
    names = ", ".join(c for c, _ in _LOG_COLUMNS)
    if dialect == "postgresql":
        arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _LOG_COLUMNS)
        return text(f"INSERT INTO activity_entry ({names}) SELECT * FROM unnest({arrays})")
    fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_LOG_COLUMNS)))
    return text(f"INSERT INTO activity_entry ({names}) SELECT {fields} FROM json_each(:rows)")


def append_log(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    changes: OutcomeChanges | None = None,
    *,
    first: bool = False,
) -> None:
    """Append entries; those that give a delivery a state change the outcome counts (in
    `changes` when given, which the caller saves; else here). `first`: the entries are the
    first of new deliveries (fan-out), which have no outcome to leave yet."""
    if not rows:
        return
    moved = [r for r in rows if r.get("state") and r.get("delivery_id") is not None]
    wanted = [] if first else [r["delivery_id"] for r in moved]
    last = last_outcomes(conn, wanted)
    _insert_log(conn, rows)
    if not moved:
        return
    mine = changes is None
    changes = changes if changes is not None else OutcomeChanges()
    if first:
        count_first(conn, moved, changes)
        moved = []
    now: dict[int, Any] = {}
    for r in moved:  # each delivery's last entry before these, then the last of these
        did = r["delivery_id"]
        if did not in last:
            continue  # no such delivery: nothing to count it under
        before = now[did] if did in now else last[did].before
        now[did] = last[did].after(
            r["state"], r["event"], r["channel"], r.get("unit_code"), r.get("content_id"), own=True
        )
        changes.move(before, now[did])
    if mine:
        changes.save(conn)


def _insert_log(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if len(rows) <= SMALL_LOG or conn.dialect.name not in ("postgresql", "sqlite"):
        conn.execute(insert(LOG), list(rows))
        return
    statement = _log_insert(conn.dialect.name)
    if conn.dialect.name == "postgresql":
        conn.execute(statement, {c: [r.get(c) for r in rows] for c, _ in _LOG_COLUMNS})
        return
    rest = [c for c, _ in _LOG_COLUMNS[1:]]
    table = [[sqlite_time(r["at"])] + [r.get(c) for c in rest] for r in rows]
    conn.execute(statement, {"rows": json.dumps(table)})


# The outcomes of one statement travel as arrays (PostgreSQL) or one JSON array (SQLite),
# so a batch of any size is one short statement.
_OUTCOME_ROWS = {
    "postgresql": "unnest(CAST(:ids AS integer[]), CAST(:ats AS timestamptz[]), "
    "CAST(:provider_ids AS varchar[]), CAST(:errors AS varchar[]), "
    "CAST(:retry_ats AS timestamptz[]), CAST(:endpoint_ids AS integer[])) "
    "AS u(id, at, provider_id, error, retry_at, endpoint_id)",
    "sqlite": "(SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at, "
    "json_extract(value, '$[2]') AS provider_id, json_extract(value, '$[3]') AS error, "
    "json_extract(value, '$[4]') AS retry_at, json_extract(value, '$[5]') AS endpoint_id "
    "FROM json_each(:rows)) AS u",
}


def apply_outcomes(
    conn: Connection, outcomes: Sequence[Outcome]
) -> tuple[list[Outcome], list[Outcome]]:
    """Move each delivery forward as its outcome says; returns (applied, refused).

    Refused: unknown delivery, wrong endpoint, or a state that is not forward of the current
    one (a late or repeated callback). Outcomes for the same delivery apply in order.
    """
    # Wave n holds each delivery's n-th outcome: a delivery's outcomes apply in order, and
    # a batch where each delivery has a few (received, then played) is a few statements.
    waves: list[list[Outcome]] = []
    seen: dict[int, int] = {}
    for outcome in outcomes:
        n = seen.get(outcome.delivery_id, 0)
        seen[outcome.delivery_id] = n + 1
        if n == len(waves):
            waves.append([])
        waves[n].append(outcome)
    applied: list[Outcome] = []
    changes = OutcomeChanges()
    for wave in waves:
        applied += _apply_wave(conn, wave, changes)
    changes.save(conn)
    done = {id(o) for o in applied}
    return applied, [o for o in outcomes if id(o) not in done]


def _apply_wave(
    conn: Connection, wave: Sequence[Outcome], changes: OutcomeChanges
) -> list[Outcome]:
    """Outcomes for distinct deliveries: one UPDATE per target state, then one INSERT of
    their log entries, which copies each entry's columns from its delivery."""
    applied: list[Outcome] = []
    entries: list[DeliveryEntry] = []
    by_state: dict[str, list[Outcome]] = {}
    for o in wave:
        by_state.setdefault(o.state, []).append(o)
    for state, group in by_state.items():
        moved: dict[int, float | None] = dict(
            conn.execute(*_update_statement(conn, state, group)).all()
        )
        for o in group:
            if o.delivery_id not in moved:
                continue
            applied.append(o)
            detail = "; ".join(x for x in (o.detail, o.error) if x) or None
            late = moved[o.delivery_id]
            if late is not None and state not in NOT_LATE:
                detail = _with_lateness(detail, timedelta(seconds=late), o.late_after)
            entries.append((o.delivery_id, o.at, o.event, state, o.actor, detail))
    log_deliveries(conn, entries, changes)
    return applied


def _with_lateness(detail: str | None, lateness: timedelta, after: timedelta | None) -> str | None:
    """The entry's detail, saying how late it is when later than `after` past its slot."""
    if lateness <= (LATE_AFTER if after is None else after):
        return detail
    late = f"late by {duration_text(lateness)}"
    return f"{detail}; {late}" if detail else late


# A log entry about a delivery, the rest of its columns taken from the delivery:
# (delivery id, at, event, state, actor, detail)
DeliveryEntry = tuple[int, datetime, str, "str | None", str, "str | None"]

_ENTRY_FROM_DELIVERY = (
    "INSERT INTO activity_entry (at, plan_id, schedule_id, occurrence_id, delivery_id, "
    "content_id, channel, unit_code, endpoint_id, event, state, actor, detail) "
    "SELECT u.at, d.plan_id, d.schedule_id, d.occurrence_id, d.id, d.content_id, d.channel, "
    "d.unit_code, d.endpoint_id, u.event, u.state, u.actor, u.detail FROM {rows} "
    "JOIN delivery AS d ON d.id = u.id ORDER BY u.n"
)
_ENTRY_ROWS = {
    "postgresql": "unnest(CAST(:ids AS integer[]), CAST(:ats AS timestamptz[]), "
    "CAST(:events AS varchar[]), CAST(:states AS varchar[]), CAST(:actors AS varchar[]), "
    "CAST(:details AS varchar[])) WITH ORDINALITY AS u(id, at, event, state, actor, detail, n)",
    "sqlite": "(SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at, "
    "json_extract(value, '$[2]') AS event, json_extract(value, '$[3]') AS state, "
    "json_extract(value, '$[4]') AS actor, json_extract(value, '$[5]') AS detail, "
    "key AS n FROM json_each(:rows)) AS u",
}


@cache
def _entry_insert(dialect: str) -> Any:
    """Built once: parsing a text clause's bind parameters is not free."""
    return text(_ENTRY_FROM_DELIVERY.format(rows=_ENTRY_ROWS[dialect]))


def log_deliveries(
    conn: Connection, entries: Sequence[DeliveryEntry], changes: OutcomeChanges | None = None
) -> None:
    """Append log entries about deliveries in one statement, whatever their number: the
    plan, schedule, unit, endpoint… of each come from its delivery row in the database.
    Entries with a state change the outcome counts (in `changes` when given)."""
    if not entries:
        return
    moved = [(did, state, event) for did, _at, event, state, _a, _d in entries if state]
    if moved:
        last = last_outcomes(conn, (did for did, _, _ in moved))
        mine = changes is None
        changes = changes if changes is not None else OutcomeChanges()
        now: dict[int, Any] = {}
        for did, state, event in moved:
            if did not in last:
                continue  # no such delivery: the INSERT below adds no entry for it
            before = now[did] if did in now else last[did].before
            now[did] = last[did].after(state, event)
            changes.move(before, now[did])
    _insert_deliveries_log(conn, entries)
    if moved and mine:
        changes.save(conn)


def _insert_deliveries_log(conn: Connection, entries: Sequence[DeliveryEntry]) -> None:
    dialect = conn.dialect.name
    statement = _entry_insert(dialect)
    if dialect == "postgresql":
        ids, ats, events, states, actors, details = zip(*entries, strict=True)
        conn.execute(
            statement,
            {
                "ids": list(ids),
                "ats": list(ats),
                "events": list(events),
                "states": list(states),
                "actors": list(actors),
                "details": list(details),
            },
        )
        return
    rows = [[i, sqlite_time(at), ev, st, a, dt] for i, at, ev, st, a, dt in entries]
    conn.execute(statement, {"rows": json.dumps(rows)})


# Seconds from a delivery's slot to its outcome, set as updated_at (NULL without a slot);
# RETURNING sees the row as updated, and only the updated table.
_LATENESS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM (delivery.updated_at - delivery.scheduled_for)) "
    "AS float8)",
    "sqlite": "(julianday(delivery.updated_at) - julianday(delivery.scheduled_for)) * 86400.0",
}


@cache
def _outcome_update(dialect: str, state: str) -> Any:
    """The statement moving a batch of deliveries to `state` (built once: parsing a text
    clause's bind parameters is not free)."""
    return text(
        f"UPDATE delivery SET state = :state, updated_at = u.at, "
        f"provider_id = COALESCE(u.provider_id, delivery.provider_id), "
        f"last_error = COALESCE(u.error, delivery.last_error), "
        f"next_attempt_at = COALESCE(u.retry_at, delivery.next_attempt_at) "
        f"FROM {_OUTCOME_ROWS[dialect]} "
        f"WHERE delivery.id = u.id AND {allowed_sql(state)} "
        f"AND (u.endpoint_id IS NULL OR delivery.endpoint_id = u.endpoint_id) "
        f"RETURNING delivery.id, {_LATENESS[dialect]}"
    )


def _update_statement(conn: Connection, state: str, group: Sequence[Outcome]) -> tuple[Any, Any]:
    statement = _outcome_update(conn.dialect.name, state)
    errors = [o.error[:1000] if o.error else None for o in group]
    if conn.dialect.name == "postgresql":
        return statement, {
            "state": state,
            "ids": [o.delivery_id for o in group],
            "ats": [o.at for o in group],
            "provider_ids": [o.provider_id for o in group],
            "errors": errors,
            "retry_ats": [o.retry_at for o in group],
            "endpoint_ids": [o.endpoint_id for o in group],
        }
    rows = [
        [
            o.delivery_id,
            sqlite_time(o.at),
            o.provider_id,
            error,
            sqlite_time(o.retry_at),
            o.endpoint_id,
        ]
        for o, error in zip(group, errors, strict=True)
    ]
    return statement, {"state": state, "rows": json.dumps(rows)}


def has_work(conn: Connection, channel: str, now: datetime) -> bool:
    """Is anything of `channel` due to be sent or expired? A read, so that an idle sender
    does not take the write lock to find out."""
    waiting = select(D.c.id).where(
        D.c.channel == channel,
        D.c.state.in_(WAITING),
        (D.c.next_attempt_at <= now) | (D.c.expires_at <= now),
    )
    return conn.execute(waiting.limit(1)).first() is not None


def claim(
    conn: Connection,
    channel: str,
    now: datetime,
    limit: int,
    worker: str,
    only: Any = None,
) -> list[Row[Any]]:
    """Take up to `limit` due deliveries of `channel` for sending; no two workers get the same.
    `only`: a further condition (a channel's rules, e.g. no SMS in quiet hours)."""
    due = (
        select(D.c.id)
        .where(
            D.c.channel == channel,
            D.c.state.in_(WAITING),
            D.c.next_attempt_at <= now,
            (D.c.expires_at.is_(None)) | (D.c.expires_at > now),
            *([only] if only is not None else []),
        )
        .order_by(D.c.priority.desc(), D.c.next_attempt_at, D.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(D)
        .where(D.c.id.in_(due.scalar_subquery()), D.c.state.in_(ALLOWED_FROM[SENDING]))
        .values(state=SENDING, attempts=D.c.attempts + 1, claimed_by=worker, updated_at=now)
        .returning(*CLAIMED)
    )
    return list(conn.execute(stmt).all())


def refund_attempts(conn: Connection, ids: Sequence[int]) -> None:
    """A delivery held back by a rule (not sent) does not count the claim as an attempt."""
    for batch in chunks(list(ids), 5000):
        conn.execute(update(D).where(D.c.id.in_(batch)).values(attempts=D.c.attempts - 1))


def move_where(
    conn: Connection,
    condition: Any,
    to: str,
    *,
    at: datetime,
    event: str,
    actor: str,
    detail: str | None = None,
    changes: OutcomeChanges | None = None,
    **values: Any,
) -> int:
    """Move every delivery matching `condition` (and allowed to move) to `to`, and log it."""
    rows = conn.execute(
        update(D)
        .where(condition, text(allowed_sql(to)))
        .values(state=to, updated_at=at, **values)
        .returning(*LOG_SOURCE)
    ).all()
    entries = log_rows(rows, at=at, event=event, state=to, actor=actor, detail=detail)
    append_log(conn, entries, changes)
    return len(rows)


def expire_overdue(conn: Connection, now: datetime, channel: str | None = None) -> int:
    """Deliveries not out by their expiry become `expired`; they are never sent after."""
    condition = and_(D.c.state.in_(WAITING), D.c.expires_at <= now)
    if channel is not None:
        condition = and_(condition, D.c.channel == channel)
    return move_where(
        conn,
        condition,
        EXPIRED,
        at=now,
        event="expired",
        actor="dispatcher",
        detail="not sent before its expiry",
    )


def recover_interrupted(
    conn: Connection, now: datetime, channel: str, resend_safe: bool, workers: Sequence[str]
) -> int:
    """Deliveries that dead `workers` left `sending` either go back to the queue (the channel
    deduplicates, or the schedule allows it) or become `unknown` (never silently re-sent)."""
    sending = and_(D.c.channel == channel, D.c.state == SENDING, D.c.claimed_by.in_(workers))
    requeue = sending
    if not resend_safe:
        S = Schedule.__table__
        allowed = select(S.c.id).where(S.c.resend_unknown.is_(True)).scalar_subquery()
        requeue = and_(sending, D.c.schedule_id.in_(allowed))
    changes = OutcomeChanges()
    requeued = move_where(
        conn,
        requeue,
        PENDING,
        at=now,
        event="requeued",
        actor="dispatcher",
        detail="send interrupted by a restart",
        changes=changes,
        next_attempt_at=now,
    )
    lost = move_where(
        conn,
        sending,
        UNKNOWN,
        at=now,
        event="unknown",
        actor="dispatcher",
        detail="outcome lost in a restart; not re-sent",
        changes=changes,
    )
    changes.save(conn)
    return requeued + lost


def requeue_unsent(
    conn: Connection, now: datetime, channel: str, worker: str, in_hand: Sequence[int]
) -> list[int]:
    """Deliveries `worker` left `sending` that it does not hold (`in_hand`): claimed by a
    round that broke before sending them. They go back to the queue, the attempt refunded."""
    condition = and_(D.c.channel == channel, D.c.state == SENDING, D.c.claimed_by == worker)
    held = set(in_hand)
    ids = [i for i in conn.execute(select(D.c.id).where(condition)).scalars() if i not in held]
    changes = OutcomeChanges()
    for batch in chunks(ids, 5000):
        move_where(
            conn,
            and_(condition, D.c.id.in_(batch)),
            PENDING,
            at=now,
            event="requeued",
            actor="dispatcher",
            detail="claimed, then the round broke before sending; back in the queue",
            changes=changes,
            next_attempt_at=now,
            attempts=D.c.attempts - 1,
        )
    changes.save(conn)
    return ids


def duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
