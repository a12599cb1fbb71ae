"""How far a plan is against its targets ("2 loudspeaker broadcasts a week in every
commune"), counted from deliveries that reached people, in the plan's zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from channels.endpoints import Endpoint
from channels.states import PROVEN
from coso.clock import zone
from coso.units import unit_tree
from dispatcher.models import Delivery
from schedules.models import PlanTarget

D = Delivery.__table__
E = Endpoint.__table__
T = PlanTarget.__table__


@dataclass(frozen=True)
class TargetProgress:
    channel: str
    count: int  # promised per unit and period
    per: str  # day, week, month, plan
    period_start: date
    period_end: date  # inclusive
    units_total: int  # units with an endpoint on the channel under the target's units
    units_met: int  # of those, units that reached `count` in the period
    reached: int  # deliveries that reached people in the period


def current_period(per: str, today: date, plan_start: date, plan_end: date) -> tuple[date, date]:
    if per == "day":
        start, end = today, today
    elif per == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=6)
    elif per == "month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    else:
        start, end = plan_start, plan_end
    return max(start, plan_start), min(end, plan_end)


def target_progress(engine: Engine, plan: Any, now: datetime) -> list[TargetProgress]:
    tz = zone(plan.zone)
    today = now.astimezone(tz).date()
    tree = unit_tree(engine)
    with engine.connect() as conn:
        targets = conn.execute(select(T).where(T.c.plan_id == plan.id).order_by(T.c.id)).all()
    found = []
    for t in targets:
        start, end = current_period(t.per, today, plan.period_start, plan.period_end)
        lo = datetime.combine(start, time(), tz)
        hi = datetime.combine(end + timedelta(days=1), time(), tz)
        units: set[str] | None = None
        if t.unit_codes:
            units = set()
            for code in t.unit_codes:
                try:
                    units |= tree.below(code)
                except Exception:  # a unit gone from the dataset counts for nothing
                    continue
        with engine.connect() as conn:
            endpoint_units = set(
                conn.scalars(
                    select(E.c.unit_code)
                    .where(E.c.channel == t.channel, E.c.enabled.is_(True))
                    .distinct()
                )
            )
            per_unit = dict(
                conn.execute(
                    select(D.c.unit_code, func.count())
                    .where(
                        D.c.plan_id == plan.id,
                        D.c.channel == t.channel,
                        D.c.state.in_(PROVEN),
                        D.c.scheduled_for >= lo,
                        D.c.scheduled_for < hi,
                    )
                    .group_by(D.c.unit_code)
                ).all()
            )
        wanted = {u for u in endpoint_units if u and (units is None or u in units)}
        found.append(
            TargetProgress(
                channel=t.channel,
                count=t.count,
                per=t.per,
                period_start=start,
                period_end=end,
                units_total=len(wanted),
                units_met=sum(1 for u in wanted if per_unit.get(u, 0) >= t.count),
                reached=sum(n for u, n in per_unit.items() if u in wanted),
            )
        )
    return found
