"""`[[groups]]`: new names, members that exist (in the file or the database), known units."""

from __future__ import annotations

from channels.endpoints import group_names
from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    ctx.existing_groups = group_names(ctx.engine)
    for i, group in enumerate(ctx.pf.groups):
        if group.name in ctx.existing_groups or group.name in ctx.file_groups:
            ctx.fail(("groups", i, "name"), group.name, "a group with this name already exists")
        ctx.file_groups.add(group.name)
        if ctx.channel(("groups", i, "channel"), group.channel):
            loc = ("groups", i, "endpoints")
            group.endpoints = ctx.addresses(loc, group.channel, group.endpoints)
        ctx.known_units(("groups", i, "units"), group.units)
