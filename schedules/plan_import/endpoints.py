"""`[[endpoints]]`: on installed channels, in known units."""

from __future__ import annotations

from coso.errors import InputError
from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    for i, ep in enumerate(ctx.pf.endpoints):
        if ctx.channel(("endpoints", i, "channel"), ep.channel):
            ctx.file_endpoints.setdefault(ep.channel, set()).add(ep.address)
        if ep.unit:
            try:
                ctx.units.current_for(ep.unit)
            except InputError as exc:
                ctx.fail(("endpoints", i, "unit"), ep.unit, exc.reason)
