"""`[[content]]`: unique keys, templates that parse and use only names coso provides, and
that render, as at send, for every endpoint the schedules using them reach; audio files that
decode (prepared now, stored with the plan)."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from content.models import RETIRED
from content.render import check_renders, check_template, message_context, used_names
from coso.clock import as_utc, zone
from coso.errors import InputError
from coso.units import unit_names
from schedules.plan_import.checker import Context
from schedules.plan_import.reach import Reached
from schedules.planfile import ContentEntry
from schedules.timing import EARLIEST, LATEST

PARTS = ("title", "body")


def check(ctx: Context) -> None:
    for i, item in enumerate(ctx.pf.content):
        if item.key in ctx.content_states:
            ctx.fail(("content", i, "key"), item.key, "appears twice")
        ctx.content_states[item.key] = item.state
        for part in PARTS:
            try:
                check_template(part, getattr(item, part))
            except InputError as exc:
                ctx.fail(("content", i, part), exc.value, exc.reason)
                ctx.unrenderable.add((item.key, part))
        if item.audio is not None:
            _prepare_audio(ctx, ("content", i, "audio"), item)


def check_stored(ctx: Context) -> None:
    """--update: content already in the plan keeps its kind and its state — a changed text
    or audio becomes a draft version (approved content keeps going out until it is
    approved); `state = "retired"` retires it, and retired content stays retired."""
    if ctx.stored is None:
        return
    for i, item in enumerate(ctx.pf.content):
        old = ctx.stored.content.get(item.key)
        if old is None:
            continue
        if item.kind != old.kind:
            ctx.fail(
                ("content", i, "kind"),
                item.kind,
                f"nội dung {item.key!r} đã có với loại {old.kind!r}; không đổi được loại:"
                " dùng key mới cho nội dung mới",
            )
        if old.state == RETIRED and item.state != RETIRED:
            ctx.fail(
                ("content", i, "state"),
                item.state,
                f"nội dung {item.key!r} đã ngừng dùng (retired) và không dùng lại được:"
                ' ghi state = "retired", hoặc dùng key mới',
            )
        ctx.content_states[item.key] = RETIRED if item.state == RETIRED else old.state


def _prepare_audio(ctx: Context, loc: tuple[object, ...], item: ContentEntry) -> None:
    """Decode, check and normalise the file now; it is stored only with the plan."""
    path = Path(item.audio or "")
    if not path.is_absolute():
        path = (ctx.folder or Path.cwd()) / path
    if not path.is_file():
        ctx.fail(loc, item.audio, f"file not found ({path}; a path is relative to the plan file)")
        return
    try:
        from content.audio import prepare_audio  # numpy, pyloudnorm: only for audio

        ctx.audio[item.key] = (prepare_audio(path, ctx.settings.media), path.name)
    except InputError as exc:
        ctx.fail(loc, item.audio, exc.reason)


def check_rendering(ctx: Context) -> None:
    """Render each content item's title and body for every endpoint that a schedule using it
    reaches, with what the template will be given at that schedule's first slot; the first
    endpoint it fails for is named. Runs after the schedules' checks (what they reach)."""
    try:
        plan_zone = zone(ctx.zone)
    except ValueError:
        return  # reported with [plan]
    head = ctx.pf.plan
    plan = SimpleNamespace(number=head.number, title=head.title, issuer=head.issuer, zone=ctx.zone)
    uses: dict[str, list[tuple[datetime, list[Reached]]]] = {}
    codes: set[str] = set()
    for i, sch in enumerate(ctx.pf.schedules):
        # A start out of range is reported with the schedule and cannot be rendered for.
        if i in ctx.reached and EARLIEST <= sch.start.replace(tzinfo=None) <= LATEST:
            first = as_utc(sch.start.replace(tzinfo=plan_zone))
            for key in sch.items:  # each item of a rotation may go to any of them
                uses.setdefault(key, []).append((first, ctx.reached[i]))
            codes.update(ep.unit_code for ep in ctx.reached[i] if ep.unit_code)
    names = unit_names(ctx.engine, codes) if codes else {}
    for i, item in enumerate(ctx.pf.content):
        for part in PARTS:
            if (item.key, part) not in ctx.unrenderable:
                _render_for_each(ctx, ("content", i, part), item, part, plan, uses, names)


def _render_for_each(
    ctx: Context,
    loc: tuple[object, ...],
    item: ContentEntry,
    part: str,
    plan: Any,
    uses: dict[str, list[tuple[datetime, list[Reached]]]],
    names: dict[str, str],
) -> None:
    text = getattr(item, part)
    read = used_names(text)
    done: set[Hashable] = set()
    for when, reached in uses.get(item.key, []):
        for ep in reached:
            unit = (ep.unit_code, names.get(ep.unit_code or "", ""))
            sources = {
                "unit": unit,
                "endpoint": (ep.address, ep.name),
                "recipient": (ep.address, ep.name),
                "scheduled_for": when,
                "local_time": when,
            }
            key = tuple(sources.get(n) for n in sorted(read))
            if key in done:
                continue  # the same text as one already rendered
            done.add(key)
            context = message_context(plan, item, ep, *unit, when)
            try:
                check_renders(part, text, context)
            except InputError as exc:
                ctx.fail(loc, exc.value, f"{exc.reason} (for endpoint {ep.address})")
                return
