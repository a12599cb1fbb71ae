"""`[[groups]]`: new names, members that exist (in the file or the database), known units.
With --update, a group that exists may be written again as it is; a file does not change
a group (other plans may use it)."""

from __future__ import annotations

from channels.endpoints import group_names
from schedules.plan_import.checker import Context
from schedules.plan_import.stored import StoredGroup
from schedules.planfile import GroupEntry


def check(ctx: Context) -> None:
    ctx.existing_groups = group_names(ctx.engine)
    stored = ctx.stored.groups if ctx.stored is not None else {}
    for i, group in enumerate(ctx.pf.groups):
        exists = group.name in ctx.existing_groups
        if group.name in ctx.file_groups or (exists and group.name not in stored):
            ctx.fail(("groups", i, "name"), group.name, "a group with this name already exists")
        ctx.file_groups.add(group.name)
        if ctx.channel(("groups", i, "channel"), group.channel):
            loc = ("groups", i, "endpoints")
            group.endpoints = ctx.addresses(loc, group.channel, group.endpoints)
        ctx.known_units(("groups", i, "units"), group.units)
        if group.name in stored and not _same(stored[group.name], group):
            ctx.fail(
                ("groups", i, "name"),
                group.name,
                "nhóm này đã có và khác với tệp (kênh, đơn vị, điểm nhận hoặc mô tả): tệp kế"
                " hoạch không sửa nhóm đã có; ghi nhóm như đã có, hoặc đặt tên mới",
            )


def _same(stored: StoredGroup, group: GroupEntry) -> bool:
    return (
        stored.channel == group.channel
        and sorted(stored.units) == sorted(group.units)
        and stored.endpoints == frozenset(group.endpoints)
        and stored.description == group.description
    )
