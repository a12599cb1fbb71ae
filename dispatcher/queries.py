"""Read-side queries shared by the CLI and the web console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, func, select

from channels.endpoints import Endpoint
from coso.errors import InputError
from coso.names import name_problem, nfc
from dispatcher.models import ActivityEntry, Delivery
from schedules.models import Plan, Schedule

LOG = ActivityEntry.__table__
D = Delivery.__table__
P = Plan.__table__


def find_plan(engine: Engine, ref: str) -> Row[Any]:
    """A plan by number ("95/KH-UBND") or id."""
    problem = name_problem(nfc(ref))
    if problem:  # no plan has such a number (and PostgreSQL would refuse a NUL)
        raise InputError("plan", ref[:60], problem)
    ref = nfc(ref)
    with engine.connect() as conn:
        row = conn.execute(select(P).where(P.c.number == ref)).first()
        if row is None and ref.isascii() and ref.isdigit() and len(ref) <= 9:
            row = conn.execute(select(P).where(P.c.id == int(ref))).first()
    if row is None:
        raise InputError("plan", ref, "no plan with this number or id")
    return row


def list_plans(engine: Engine) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(select(P).order_by(P.c.created_at.desc())).all())


@dataclass(frozen=True)
class LogFilter:
    channel: str | None = None
    units: frozenset[str] | None = None  # a unit and every unit below it
    state: str | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 200  # None: every entry


def activity(engine: Engine, plan_id: int, f: LogFilter) -> list[Row[Any]]:
    query = (
        select(LOG, Endpoint.__table__.c.address)
        .join(Endpoint.__table__, Endpoint.__table__.c.id == LOG.c.endpoint_id, isouter=True)
        .where(LOG.c.plan_id == plan_id)
    )
    if f.channel:
        query = query.where(LOG.c.channel == f.channel)
    if f.units is not None:
        query = query.where(LOG.c.unit_code.in_(sorted(f.units)))
    if f.state:
        query = query.where(LOG.c.state == f.state)
    if f.event:
        query = query.where(LOG.c.event == f.event)
    if f.since:
        query = query.where(LOG.c.at >= f.since)
    if f.until:
        query = query.where(LOG.c.at < f.until)
    query = query.order_by(LOG.c.at.desc(), LOG.c.id.desc())
    if f.limit is not None:
        query = query.limit(f.limit)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def deliveries(
    engine: Engine,
    plan_id: int,
    state: str | None = None,
    channel: str | None = None,
    limit: int = 200,
) -> list[Row[Any]]:
    query = (
        select(D, Endpoint.__table__.c.address)
        .join(Endpoint.__table__, Endpoint.__table__.c.id == D.c.endpoint_id)
        .where(D.c.plan_id == plan_id)
    )
    if state:
        query = query.where(D.c.state == state)
    if channel:
        query = query.where(D.c.channel == channel)
    with engine.connect() as conn:
        return list(
            conn.execute(query.order_by(D.c.scheduled_for.desc(), D.c.id).limit(limit)).all()
        )


def delivery_counts(engine: Engine, plan_id: int) -> dict[tuple[str, str], int]:
    """(channel, state) → number of deliveries of the plan."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.c.channel, D.c.state, func.count())
            .where(D.c.plan_id == plan_id)
            .group_by(D.c.channel, D.c.state)
        ).all()
    return {(c, s): n for c, s, n in rows}


def plan_schedules(engine: Engine, plan_id: int) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(Schedule.__table__)
                .where(Schedule.__table__.c.plan_id == plan_id)
                .order_by(Schedule.__table__.c.id)
            ).all()
        )
