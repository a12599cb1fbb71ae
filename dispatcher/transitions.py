"""The one place delivery states change. Every move is a conditional UPDATE that only
succeeds from an allowed earlier state, and every move that matters is appended to the
activity log in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from channels.base import Outcome
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.states import (
    ALLOWED_FROM,
    EXPIRED,
    MISSED,
    PENDING,
    RETRY_WAIT,
    SENDING,
    UNKNOWN,
    WAITING,
)
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
# Entries later than this after the slot say how late they were.
LATE_AFTER = timedelta(minutes=1)
NOT_LATE = (PENDING, RETRY_WAIT, EXPIRED, MISSED)  # these say why themselves


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
        lateness = at - r.scheduled_for if r.scheduled_for else timedelta()
        if state and state not in NOT_LATE and lateness > LATE_AFTER:
            late = f"late by {duration_text(lateness)}"
            note = f"{note}; {late}" if note else late
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


def append_log(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(LOG), list(rows))


def apply_outcomes(
    conn: Connection, outcomes: Sequence[Outcome]
) -> tuple[list[Outcome], list[Outcome]]:
    """Move each delivery forward as its outcome says; returns (applied, refused).

    Refused: unknown delivery, wrong endpoint, or a state that is not forward of the current
    one (a late or repeated callback).
    """
    applied, refused, entries = [], [], []
    for o in outcomes:
        values: dict[str, Any] = {"state": o.state, "updated_at": o.at}
        if o.provider_id is not None:
            values["provider_id"] = o.provider_id
        if o.error is not None:
            values["last_error"] = o.error[:1000]
        if o.retry_at is not None:
            values["next_attempt_at"] = o.retry_at
        condition = and_(D.c.id == o.delivery_id, D.c.state.in_(ALLOWED_FROM[o.state]))
        if o.endpoint_id is not None:
            condition = and_(condition, D.c.endpoint_id == o.endpoint_id)
        row = conn.execute(
            update(D).where(condition).values(**values).returning(*LOG_SOURCE)
        ).first()
        if row is None:
            refused.append(o)
            continue
        applied.append(o)
        detail = "; ".join(x for x in (o.detail, o.error) if x) or None
        entries += log_rows(
            [row], at=o.at, event=o.event, state=o.state, actor=o.actor, detail=detail
        )
    append_log(conn, entries)
    return applied, refused


def claim(conn: Connection, channel: str, now: datetime, limit: int, worker: str) -> list[Row[Any]]:
    """Take up to `limit` due deliveries of `channel` for sending; no two workers get the same."""
    due = (
        select(D.c.id)
        .where(
            D.c.channel == channel,
            D.c.state.in_(WAITING),
            D.c.next_attempt_at <= now,
            (D.c.expires_at.is_(None)) | (D.c.expires_at > now),
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
        .returning(*D.c)
    )
    return list(conn.execute(stmt).all())


def move_where(
    conn: Connection,
    condition: Any,
    to: str,
    *,
    at: datetime,
    event: str,
    actor: str,
    detail: str | None = None,
    **values: Any,
) -> int:
    """Move every delivery matching `condition` (and allowed to move) to `to`, and log it."""
    rows = conn.execute(
        update(D)
        .where(condition, D.c.state.in_(ALLOWED_FROM[to]))
        .values(state=to, updated_at=at, **values)
        .returning(*LOG_SOURCE)
    ).all()
    append_log(conn, log_rows(rows, at=at, event=event, state=to, actor=actor, detail=detail))
    return len(rows)


def expire_overdue(conn: Connection, now: datetime, channel: str | None = None) -> int:
    """Deliveries not out by their expiry become `expired`; they are never sent after."""
    condition = D.c.expires_at <= now
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
    requeued = move_where(
        conn,
        requeue,
        PENDING,
        at=now,
        event="requeued",
        actor="dispatcher",
        detail="send interrupted by a restart",
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
    )
    return requeued + lost


def duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
