"""Schedules with `queue`: their items placed into the sessions of every unit they reach,
when the file is checked, so an item that finds no room is refused with the session named
before anything is written (schedules.session_queue)."""

from __future__ import annotations

import math
from datetime import date, datetime, time

from channels import registry
from content.media import media_for
from coso.clock import as_utc, zone
from coso.durations import parse_duration
from schedules.models import EMERGENCY
from schedules.plan_import.checker import Context
from schedules.plan_import.writer import until_text
from schedules.planfile import ScheduleEntry
from schedules.session_queue import Booked, NoRoom, Queue, place
from schedules.session_store import (
    GroupReach,
    all_changes,
    all_defs,
    booked_load,
    range_bounds,
    stored_groups,
    stored_placements,
    unit_places,
)
from schedules.sessions import instances


def check_queue(ctx: Context, loc: tuple[object, ...], sch: ScheduleEntry) -> None:
    """What a queued schedule may not have: clock rules, emergency priority, a channel
    whose items do not play in turn, an end after the plan's."""
    if sch.queue is None:
        return
    if sch.rrule is not None:
        ctx.fail(
            (*loc, "rrule"),
            sch.rrule,
            "a schedule with queue goes out in the sessions: give no rrule",
        )
    if sch.priority == EMERGENCY:
        ctx.fail(
            (*loc, "priority"),
            sch.priority,
            "emergencies stay outside sessions and interrupt: give it a clock time, no queue",
        )
    plugin = registry.plugins().get(sch.channel)
    if plugin is not None and not plugin.plays_in_turn:
        ctx.fail(
            (*loc, "queue"),
            sch.channel,
            f"kênh {sch.channel} không phát theo buổi: queue is for channels that broadcast"
            " in sessions",
        )
    if sch.queue.length is not None:
        try:
            parse_duration(sch.queue.length)
        except ValueError as exc:
            ctx.fail((*loc, "queue", "length"), sch.queue.length, str(exc))
    end = last_day(ctx, sch)
    if end > ctx.pf.plan.period_end:
        ctx.fail(
            (*loc, "until"),
            str(sch.until),
            f"runs past the plan's period_end {ctx.pf.plan.period_end}",
        )


def last_day(ctx: Context, sch: ScheduleEntry) -> date:
    if sch.until is None:
        return ctx.pf.plan.period_end
    return sch.until.date() if isinstance(sch.until, datetime) else sch.until


def place_queued(ctx: Context) -> None:
    """Place every enabled queued schedule that passed its checks, in the file's order,
    into what the sessions already hold."""
    queued = [
        (i, s)
        for i, s in enumerate(ctx.pf.schedules)
        if s.queue is not None and s.enabled and i in ctx.reached
    ]
    if not queued or ctx.check.errors:
        return
    units = {r.unit_code for i, _ in queued for r in ctx.reached[i] if r.unit_code}
    groups = stored_groups(ctx.engine) + [
        GroupReach(
            g.name,
            tuple(g.units),
            frozenset(
                ctx.units.current_for(e.unit)
                for e in ctx.pf.endpoints
                if e.unit and e.channel == g.channel and e.address in g.endpoints
            ),
        )
        for g in ctx.pf.groups
    ]
    places = unit_places(ctx.engine, units, tree=ctx.units, groups=groups)
    defs = ctx.session_defs + all_defs(ctx.engine, ctx.settings)
    changes = ctx.session_changes + all_changes(ctx.engine)
    first = min(s.start.date() for _, s in queued)  # type: ignore[union-attr]
    last = max(last_day(ctx, s) for _, s in queued)
    lo, hi = range_bounds(first, last)
    # With --update, a queued schedule the file leaves as it was keeps where it went; one
    # it changes is placed again (its own room freed first).
    kept = kept_as_stored(ctx, queued)
    replaced = (
        {s.id for s in ctx.stored.schedules if s.name in {q.name for _, q in queued}}
        - set(kept.values())
        if ctx.stored is not None
        else set()
    )
    load = booked_load(ctx.engine, units, lo, hi, without=replaced)
    for i, schedule_id in kept.items():
        ctx.placements[i] = stored_placements(ctx.engine, schedule_id, ctx.zone)
    for i, sch in queued:
        if i in kept:
            continue
        loc = ("schedules", i)
        assert sch.queue is not None
        seconds = item_seconds(ctx, sch)
        if seconds is None:
            ctx.fail(
                (*loc, "queue", "length"),
                None,
                f"lịch {sch.name!r}: how long is the item? Its content has no audio to tell:"
                ' give queue.length ("10m")',
            )
            continue
        homeless = sorted(r.address for r in ctx.reached[i] if not r.unit_code)
        if homeless:
            ctx.fail(
                (*loc, "targets"),
                homeless[0],
                "this endpoint has no unit, so it has no sessions: give it a unit, or a"
                " clock time to the schedule",
            )
            continue
        item = Booked(
            ctx.content_text(sch.items[0])[0], seconds, sch.priority, order=1_000_000_000 + i
        )
        queue = Queue(sch.queue.per_week, tuple(sch.queue.sessions), sch.queue.when_full)
        start_day = sch.start.date()  # type: ignore[union-attr]
        end_day = last_day(ctx, sch)
        placed = []
        for unit in sorted({r.unit_code for r in ctx.reached[i] if r.unit_code}):
            found = instances(places[unit], defs, changes, start_day, end_day, ctx.zone)
            found = [s for s in found if s.at >= _start_utc(sch, ctx)]
            try:
                chosen = place(
                    found,
                    load,
                    item,
                    queue,
                    after=ctx.now,
                    last=end_day,
                    unit_name=places[unit].name,
                    tz=ctx.zone,
                )
            except NoRoom as exc:
                ctx.fail((*loc, "queue"), sch.name, f"lịch {sch.name!r}: {exc.reason}")
                break
            placed += [(s, seconds) for s in chosen]
        else:
            ctx.placements[i] = placed


def kept_as_stored(ctx: Context, queued: list[tuple[int, ScheduleEntry]]) -> dict[int, int]:
    """Schedule index → stored id, for the queued schedules an update leaves as they were
    (content, channel, targets, queue, range and enabled all the same)."""
    if ctx.stored is None:
        return {}
    kept = {}
    for i, sch in queued:
        old = next((s for s in ctx.stored.schedules if s.name == sch.name), None)
        if old is None or old.content != sch.content:
            continue
        v = old.values
        same = (
            v["queue"] == (sch.queue.model_dump() if sch.queue else None)
            and v["channel"] == sch.channel
            and v["targets"] == sch.targets.model_dump()
            and v["start_local"] == sch.start.isoformat()
            and v["until_local"] == until_text(sch.until)
            and v["enabled"] == sch.enabled
        )
        if same:
            kept[i] = old.id
    return kept


def _start_utc(sch: ScheduleEntry, ctx: Context) -> datetime:
    start = sch.start if isinstance(sch.start, datetime) else datetime.combine(sch.start, time())
    return as_utc(start.replace(tzinfo=zone(ctx.zone)))


def item_seconds(ctx: Context, sch: ScheduleEntry) -> int | None:
    """How long the item plays: the longest audio of its content (a rotation's pool), else
    queue.length."""
    assert sch.queue is not None
    lengths: list[float] = []
    stored_ids = []
    for key in sch.items:
        if key in ctx.audio:
            lengths.append(ctx.audio[key][0].duration_seconds)
        elif ctx.stored is not None and key in ctx.stored.content:
            stored_ids.append(ctx.stored.content[key].id)
    if stored_ids:
        lengths += [a.duration_seconds for a in media_for(ctx.engine, set(stored_ids)).values()]
    if lengths:
        return math.ceil(max(lengths))
    if sch.queue.length is not None:
        try:
            return int(parse_duration(sch.queue.length).total_seconds()) or None
        except ValueError:
            return None
    return None
