"""`[[endpoints]]`: on installed channels, with addresses the channel accepts (kept as it
keeps them: SMS numbers in E.164), in known units."""

from __future__ import annotations

from coso.errors import InputError
from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    for i, ep in enumerate(ctx.pf.endpoints):
        if ctx.channel(("endpoints", i, "channel"), ep.channel):
            address = ctx.address(("endpoints", i, "address"), ep.channel, ep.address)
            if address is not None:
                ep.address = address  # written as the channel keeps it
                ctx.file_endpoints.setdefault(ep.channel, set()).add(address)
        if ep.unit:
            try:
                ctx.units.current_for(ep.unit)
            except InputError as exc:
                ctx.fail(("endpoints", i, "unit"), ep.unit, exc.reason)
