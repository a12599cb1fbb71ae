"""`[[targets]]`: what the plan promises, on installed channels in known units."""

from __future__ import annotations

from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    for i, target in enumerate(ctx.pf.targets):
        ctx.channel(("targets", i, "channel"), target.channel)
        ctx.known_units(("targets", i, "units"), target.units)
