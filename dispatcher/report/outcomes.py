"""What the activity log says became of a plan's deliveries in a period: one query that
takes, for each delivery, its last entry with a state (its outcome), counted by channel,
unit, content, slot, state and event. Indexed by `ix_activity_outcome` (plan, delivery,
id), so the last entry of each delivery is read from the index alone."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, func, select

from coso.clock import as_utc
from dispatcher.models import ActivityEntry
from dispatcher.report.figures import DONE
from schedules.models import Occurrence

A = ActivityEntry.__table__
OCC = Occurrence.__table__


@dataclass(frozen=True)
class Outcome:
    """`n` deliveries of one channel, unit, content and slot that ended the same way."""

    channel: str
    unit_code: str | None
    content_id: int | None
    scheduled_for: datetime  # UTC
    state: str
    event: str
    n: int


def _last_entries(plan_id: int) -> Select:
    return (
        select(A.c.delivery_id, func.max(A.c.id).label("id"))
        .where(A.c.plan_id == plan_id, A.c.delivery_id.is_not(None), A.c.state.is_not(None))
        .group_by(A.c.delivery_id)
    )


def outcomes(engine: Engine, plan_id: int, lo: datetime, hi: datetime) -> list[Outcome]:
    """Outcomes of the deliveries whose slot is in [lo, hi)."""
    last = _last_entries(plan_id).subquery()
    query = (
        select(
            A.c.channel,
            A.c.unit_code,
            A.c.content_id,
            OCC.c.scheduled_for,
            A.c.state,
            A.c.event,
            func.count(),
        )
        .select_from(last.join(A, A.c.id == last.c.id).join(OCC, OCC.c.id == A.c.occurrence_id))
        .where(OCC.c.scheduled_for >= lo, OCC.c.scheduled_for < hi)
        .group_by(
            A.c.channel, A.c.unit_code, A.c.content_id, OCC.c.scheduled_for, A.c.state, A.c.event
        )
    )
    with engine.connect() as conn:
        return [
            Outcome(c, u, content, as_utc(at), state, event, n)
            for c, u, content, at, state, event, n in conn.execute(query)
        ]


def reached(
    engine: Engine,
    plan_id: int,
    lo: datetime,
    hi: datetime,
    units: Collection[str] | None,
    by_unit: bool,
) -> dict[tuple[str, str | None], int]:
    """(channel, unit or None) → distinct endpoints with a delivery that reached people."""
    last = _last_entries(plan_id).subquery()
    columns = [A.c.channel, *([A.c.unit_code] if by_unit else [])]
    query = (
        select(*columns, func.count(func.distinct(A.c.endpoint_id)))
        .select_from(last.join(A, A.c.id == last.c.id).join(OCC, OCC.c.id == A.c.occurrence_id))
        .where(OCC.c.scheduled_for >= lo, OCC.c.scheduled_for < hi, A.c.state.in_(DONE))
        .group_by(*columns)
    )
    if units is not None:
        query = query.where(A.c.unit_code.in_(sorted(units)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if by_unit:
        return {(r[0], r[1]): r[2] for r in rows}
    return {(r[0], None): r[1] for r in rows}
