"""`[plan]`: a new number (or, with --update, the number of the plan it changes), a known
zone, a period that ends after it starts."""

from __future__ import annotations

from sqlalchemy import select

from coso.clock import zone
from schedules.models import Plan
from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    head = ctx.pf.plan
    plan = Plan.__table__
    with ctx.engine.connect() as conn:
        exists = conn.scalar(select(plan.c.id).where(plan.c.number == head.number))
    if exists and ctx.stored is None:
        ctx.fail(
            ("plan", "number"),
            head.number,
            "a plan with this number already exists: to change it, import the file with"
            " --update (coso plan import --update FILE), which shows what would change",
        )
    try:
        zone(ctx.zone)
    except ValueError as exc:
        ctx.fail(("plan", "zone"), ctx.zone, str(exc))
    if head.period_end < head.period_start:
        ctx.fail(("plan", "period_end"), str(head.period_end), "is before period_start")
