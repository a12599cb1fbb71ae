"""`[[schedules]]`: approved content of this file, a channel that is set up, its options,
targets that exist, timing that parses, and firings within the channel's bounds."""

from __future__ import annotations

from datetime import date, datetime, time

from channels import registry
from channels.registry import check_options
from content.models import APPROVED
from coso.clock import as_utc, zone
from coso.durations import duration_within, parse_duration
from coso.errors import InputError
from schedules.limits import Planned, check_limits
from schedules.plan_import.checker import Context
from schedules.plan_import.queued import check_queue, place_queued
from schedules.plan_import.reach import Reach
from schedules.planfile import ScheduleEntry
from schedules.timing import ExpansionError, anchored_near, check_window, parse_rrule


def check(ctx: Context) -> None:
    reach = Reach(ctx)
    named: dict[str, int] = {}
    for i, sch in enumerate(ctx.pf.schedules):
        _check_one(ctx, reach, i, sch)
        if ctx.stored is not None and sch.name in named:
            ctx.fail(
                ("schedules", i, "name"),
                sch.name,
                f"trùng tên với schedules[{named[sch.name]}]: khi cập nhật, lịch được nhận ra"
                " theo tên, nên mỗi lịch cần một tên riêng",
            )
        named.setdefault(sch.name, i)
    place_queued(ctx)


def _check_one(ctx: Context, reach: Reach, i: int, sch: ScheduleEntry) -> None:
    loc = ("schedules", i)
    states = ctx.content_states
    field = "rotation" if sch.rotation else "content"
    if not _content_or_rotation(ctx, loc, sch):
        return
    for key in sch.items:
        if key not in states:
            ctx.fail((*loc, field), key, f"no content with this key; have {sorted(states)}")
        elif sch.enabled and states[key] != APPROVED:
            ctx.fail(
                (*loc, field),
                key,
                f"content is {states[key]!r}; only approved content can be scheduled",
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
    if sch.enabled and plugin.needs_audio:
        for key in sch.items:
            if key in states:
                _check_audio(ctx, loc, sch, key, field)
    try:
        options = check_options(sch.channel, sch.options)
    except InputError as exc:
        ctx.fail((*loc, *exc.field.split(".")), exc.value, exc.reason)
    else:
        if plugin.check_item is not None:
            for key in sch.items:
                problem = plugin.check_item(ctx.content_text(key)[1], options)
                if problem is not None:
                    ctx.fail((*loc, field), key, problem)
    errors = len(ctx.check.errors)
    _check_targets(ctx, loc, sch)
    if len(ctx.check.errors) == errors:
        reached = ctx.reached[i] = reach.resolve(sch.channel, sch.targets)
        if not reached:
            ctx.fail(
                (*loc, "targets"),
                sch.targets.model_dump(),
                f"reaches no enabled {sch.channel} endpoint: none of the database or of this "
                "file is at these addresses, in these groups or units",
            )
    errors = len(ctx.check.errors)
    _check_timing(ctx, loc, sch)
    _check_period(ctx, loc, sch)
    check_queue(ctx, loc, sch)
    if len(ctx.check.errors) == errors and sch.queue is None:
        _check_limits(ctx, loc, sch)


def _check_targets(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    spec = sch.targets
    if not (spec.endpoints or spec.groups or spec.units):
        ctx.fail(
            (*loc, "targets"), spec.model_dump(), "selects nothing: give endpoints, groups or units"
        )
    spec.endpoints = ctx.addresses((*loc, "targets", "endpoints"), sch.channel, spec.endpoints)
    for name in spec.groups:
        if name not in ctx.existing_groups and name not in ctx.file_groups:
            ctx.fail((*loc, "targets", "groups"), name, "no group with this name")
    ctx.known_units((*loc, "targets", "units"), spec.units)


def _check_timing(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    for key, value in (("start", sch.start), ("until", _until_local(sch.until))):
        if value is not None:
            try:
                check_window(value.replace(tzinfo=None), key)
            except ValueError as exc:
                ctx.fail((*loc, key), value.isoformat(), f"lịch {sch.name!r}: {exc}")
    if sch.rrule is not None:
        try:
            parse_rrule(sch.rrule, sch.start.replace(tzinfo=None))
        except ExpansionError as exc:
            ctx.fail((*loc, "rrule"), sch.rrule, f"lịch {sch.name!r}: {exc}")
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
                if name == "validity":
                    duration_within(value)  # a broadcast valid for no time never goes out
                else:
                    parse_duration(value)
            except ValueError as exc:
                ctx.fail((*loc, name), value, str(exc))
    until = _until_local(sch.until)
    if sch.rrule is not None and until is not None and until < sch.start.replace(tzinfo=None):
        ctx.fail(
            (*loc, "until"),
            str(sch.until),
            f"lịch {sch.name!r}: until {until:%d/%m/%Y %H:%M} trước start "
            f"{sch.start:%d/%m/%Y %H:%M}: lịch sẽ không bao giờ phát",
        )


def _check_limits(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    """How often and how far ahead it fires, against its channel's bounds (read through the
    channel registry: `[channels.<name>.schedules]`)."""
    try:
        now_local = as_utc(ctx.now).astimezone(zone(ctx.zone)).replace(tzinfo=None)
    except ValueError:
        return  # an unknown zone is reported with [plan]
    start = sch.start.replace(tzinfo=None)
    planned = Planned(
        name=sch.name,
        channel=sch.channel,
        start=start,
        rule=parse_rrule(sch.rrule, start) if sch.rrule is not None else None,
        rule_text=sch.rrule,
        until=_until_local(sch.until),
    )
    limits = registry.schedule_limits(ctx.settings, sch.channel)
    for breach in check_limits(planned, limits, now_local):
        ctx.fail((*loc, breach.key), breach.value, breach.reason)


def _content_or_rotation(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> bool:
    """One content item, or a rotation of distinct ones (content, if given, its first);
    policy and weights only with a rotation, weights only for its items."""
    if sch.rotation:
        doubled = sorted({k for k in sch.rotation if sch.rotation.count(k) > 1})
        if doubled:
            ctx.fail((*loc, "rotation"), doubled[0], "nội dung này có hai lần trong rotation")
        if sch.content != sch.rotation[0]:
            ctx.fail(
                (*loc, "content"),
                sch.content,
                "cho content hoặc rotation, không cả hai (content là mục đầu của rotation)",
            )
        for key in sorted(set(sch.weights) - set(sch.rotation)):
            ctx.fail((*loc, "weights", key), key, "weights name content not in the rotation")
        return True
    if sch.content is None:
        ctx.fail((*loc, "content"), None, "a schedule needs content (or a rotation)")
        return False
    if sch.policy is not None or sch.weights:
        ctx.fail((*loc, "policy"), sch.policy, "policy and weights go with a rotation")
    return True


def _check_audio(
    ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry, key: str, field: str
) -> None:
    """The channel plays audio only: the content must bring its file (content items of a new
    plan have no audio attached yet), or, with --update, already go out with audio (audio
    the file brings for approved content waits, as a draft, for approval)."""
    number = ctx.pf.plan.number
    old = ctx.stored.content.get(key) if ctx.stored is not None else None
    if old is not None:
        if not old.has_audio:
            ctx.fail(
                (*loc, field),
                key,
                f"{sch.channel} content needs prepared audio and {key!r} goes out"
                " without any: give this schedule enabled = false, add the audio (audio ="
                f' "FILE" in its [[content]], coso content audio {number} {key}'
                f" FILE, or coso content speak {number} {key} for its text), approve that"
                f" version (coso content approve {number} {key} --by NAME), then coso"
                " schedule enable",
            )
        return
    if any(c.key == key and c.audio for c in ctx.pf.content):
        return
    ctx.fail(
        (*loc, field),
        key,
        f"{sch.channel} content needs prepared audio and {key!r} has none:"
        ' add audio = "FILE" to its [[content]] (a path relative to this file), or import'
        f" this schedule with enabled = false, then coso content audio {number}"
        f" {key} FILE (or coso content speak {number} {key} for its text),"
        f" coso content approve {number} {key} --by NAME and"
        " coso schedule enable",
    )


CLIP_HINT = 'or clip it there with past_period = "clip" under [plan]'


def _check_period(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    """Every slot falls within the plan's period, local days in its zone. A schedule that
    would go on after period_end is refused, or with `past_period = "clip"` ended there."""
    head = ctx.pf.plan
    first = datetime.combine(head.period_start, time())
    last = datetime.combine(head.period_end, time(23, 59, 59))
    start = sch.start.replace(tzinfo=None)
    if start < first:
        why = f"is before the plan's period_start {head.period_start}"
        ctx.fail((*loc, "start"), start.isoformat(), why)
        return
    if start > last:
        why = f"is after the plan's period_end {head.period_end}"
        ctx.fail((*loc, "start"), start.isoformat(), why)
        return
    if sch.rrule is None:
        return
    try:
        rule = parse_rrule(sch.rrule, start)
    except ValueError:
        return  # reported with the timing
    until = _until_local(sch.until)
    if until is not None:
        if until <= last:
            return
        where: tuple[object, ...] = (*loc, "until")
        value: object = str(sch.until)
        why = f"runs past the plan's period_end {head.period_end}: end it by then, {CLIP_HINT}"
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    elif rule._until is None and rule._count is None:  # type: ignore[attr-defined]
        where, value = (*loc, "rrule"), sch.rrule
        why = (
            f"has no UNTIL or COUNT and no until, so it runs past the plan's period_end "
            f"{head.period_end}: give until = {head.period_end}, {CLIP_HINT}"
        )
    else:
        later = anchored_near(rule, start, last).after(last)
        if later is None:
            return
        where, value = (*loc, "rrule"), sch.rrule
        why = (
            f"fires on {later:%d/%m/%Y %H:%M}, after the plan's period_end {head.period_end}: "
            f"end it by then, {CLIP_HINT}"
        )
    if head.past_period == "clip":
        sch.until = last
    else:
        ctx.fail(where, value, why)


def _until_local(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.replace(tzinfo=None) if value else None
    return datetime.combine(value, time(23, 59, 59))
