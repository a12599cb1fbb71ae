"""`[[schedules]]`: approved content of this file, a channel that is set up, its options,
targets that exist, and timing that parses."""

from __future__ import annotations

from channels import registry
from channels.registry import check_options
from content.models import APPROVED
from coso.durations import parse_duration
from coso.errors import InputError
from schedules.plan_import.checker import Context
from schedules.planfile import ScheduleEntry
from schedules.timing import parse_rrule


def check(ctx: Context) -> None:
    for i, sch in enumerate(ctx.pf.schedules):
        _check_one(ctx, ("schedules", i), sch)


def _check_one(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    states = ctx.content_states
    if sch.content not in states:
        ctx.fail((*loc, "content"), sch.content, f"no content with this key; have {sorted(states)}")
    elif sch.enabled and states[sch.content] != APPROVED:
        ctx.fail(
            (*loc, "content"),
            sch.content,
            f"content is {states[sch.content]!r}; only approved content can be scheduled",
        )
    if not ctx.channel((*loc, "channel"), sch.channel):
        return
    plugin = registry.get(sch.channel)
    if sch.enabled and not plugin.configured(registry.settings_of(ctx.settings, sch.channel)):
        ready = ", ".join(registry.configured(ctx.settings))
        ctx.fail(
            (*loc, "channel"),
            sch.channel,
            f"this channel is not set up ({plugin.not_configured_hint or 'see its settings'});"
            f" set up: {ready}",
        )
    try:
        check_options(sch.channel, sch.options)
    except InputError as exc:
        ctx.fail((*loc, *exc.field.split(".")), exc.value, exc.reason)
    _check_targets(ctx, loc, sch)
    _check_timing(ctx, loc, sch)


def _check_targets(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    spec = sch.targets
    if not (spec.endpoints or spec.groups or spec.units):
        ctx.fail(
            (*loc, "targets"), spec.model_dump(), "selects nothing: give endpoints, groups or units"
        )
    ctx.known_endpoints((*loc, "targets", "endpoints"), sch.channel, spec.endpoints)
    for name in spec.groups:
        if name not in ctx.existing_groups and name not in ctx.file_groups:
            ctx.fail((*loc, "targets", "groups"), name, "no group with this name")
    ctx.known_units((*loc, "targets", "units"), spec.units)


def _check_timing(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    if sch.rrule is not None:
        try:
            parse_rrule(sch.rrule, sch.start.replace(tzinfo=None))
        except ValueError as exc:
            ctx.fail((*loc, "rrule"), sch.rrule, str(exc))
    if sch.start.tzinfo is not None:
        ctx.fail(
            (*loc, "start"),
            sch.start.isoformat(),
            "give local time without offset; the plan's zone applies",
        )
    for name in ("validity", "misfire_grace"):
        value = getattr(sch, name)
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as exc:
                ctx.fail((*loc, name), value, str(exc))
