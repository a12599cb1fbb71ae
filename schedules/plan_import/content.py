"""`[[content]]`: unique keys, templates that parse and use only names coso provides."""

from __future__ import annotations

from content.render import check_template
from coso.errors import InputError
from schedules.plan_import.checker import Context


def check(ctx: Context) -> None:
    for i, item in enumerate(ctx.pf.content):
        if item.key in ctx.content_states:
            ctx.fail(("content", i, "key"), item.key, "appears twice")
        ctx.content_states[item.key] = item.state
        for part in ("title", "body"):
            try:
                check_template(part, getattr(item, part))
            except InputError as exc:
                ctx.fail(("content", i, part), exc.value, exc.reason)
