"""Which administrative units a plan touches, and so who may see it: its targets, its
schedules' targets and the units its deliveries went to."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, select

from channels.endpoints import resolve_targets
from coso.access import Access
from dispatcher.models import Delivery
from dispatcher.queries import list_plans, plan_schedules
from schedules.models import PlanTarget

D = Delivery.__table__
T = PlanTarget.__table__


def plan_units(engine: Engine, plan_id: int) -> set[str]:
    units: set[str] = set()
    with engine.connect() as conn:
        for codes in conn.scalars(select(T.c.unit_codes).where(T.c.plan_id == plan_id)):
            units.update(codes or [])
        units.update(
            c
            for c in conn.scalars(select(D.c.unit_code).where(D.c.plan_id == plan_id).distinct())
            if c
        )
    for sch in plan_schedules(engine, plan_id):
        targets = sch.targets or {}
        units.update(targets.get("units", []))
        units.update(u for _, u in resolve_targets(engine, sch.channel, targets) if u)
    return units


def may_see_plan(engine: Engine, access: Access, plan: Any) -> bool:
    return (
        access.units is None
        or access.owns(plan.organisation_id)
        or access.reaches_any(plan_units(engine, plan.id))
    )


def whole_plan(access: Access, plan: Any) -> bool:
    """Sees every unit's part of the plan (an administrator, or the owning organisation)."""
    return access.units is None or access.owns(plan.organisation_id)


def visible_plans(engine: Engine, access: Access) -> list[Any]:
    return [p for p in list_plans(engine) if may_see_plan(engine, access, p)]


# A phone number as it may appear in an address, an actor or a note: +84…, 0…, 84… with
# 9 or more digits, spaces or dots between them allowed.
PHONE = re.compile(r"(?<![\w])(\+?\d[\d .-]{7,}\d)(?![\w])")


def mask_phones(text: str | None) -> str:
    """Each phone number in `text` with all but its last two digits hidden."""
    if not text:
        return ""

    def hide(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(1))
        if len(digits) < 9:
            return match.group(1)
        return "•" * (len(digits) - 2) + digits[-2:]

    return PHONE.sub(hide, text)
