"""`[[sessions]]` and `[[session_exceptions]]`: broadcast sessions of known units, groups or
kinds of unit, with days, a start and a length that read; exceptions on real days. A
session that exists already may be written again as it is; a file does not change one
(items are placed in it): it is refused, naming it."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from sqlalchemy import select

from coso.durations import duration_within
from coso.weektimes import clock_text, kind_word, parse_clock, parse_weekdays, weekdays_text
from schedules.plan_import.checker import Context
from schedules.session_store import def_of, stored_changes
from schedules.sessions import (
    ADD,
    CANCEL,
    GROUP,
    KIND,
    UNIT,
    BroadcastSession,
    DayChange,
    SessionDef,
    overlap,
    scope,
)

KINDS = ("phường", "xã", "đặc khu")
LONGEST = timedelta(hours=24)


def check(ctx: Context) -> None:
    stored = _stored_sessions(ctx)
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(ctx.pf.sessions):
        loc = ("sessions", i)
        scopes = _scopes(ctx, loc, entry.units, entry.group, entry.unit_kind, required=True)
        days = _weekdays(ctx, (*loc, "weekdays"), entry.weekdays)
        start = _clock(ctx, (*loc, "start"), entry.start)
        minutes = _minutes(ctx, (*loc, "length"), entry.length)
        if days is None or start is None or minutes is None:
            continue
        for where in scopes:
            if (where, entry.name) in seen:
                ctx.fail(
                    (*loc, "name"),
                    entry.name,
                    f"trùng với sessions[{seen[(where, entry.name)]}]: một nơi chỉ có một buổi"
                    " mang tên này",
                )
                continue
            seen[(where, entry.name)] = i
            new = SessionDef(where, entry.name, days, start, minutes)
            old = stored.get((where, entry.name))
            clash = next(
                (
                    other
                    for other in [*ctx.session_defs, *stored.values()]
                    if other.scope == where and other.name != entry.name and overlap(new, other)
                ),
                None,
            )
            if clash is not None:
                ctx.fail(
                    (*loc, "start"),
                    clock_text(start),
                    f"buổi {entry.name!r} trùng giờ với buổi {clash.name!r} của {where}"
                    f" ({weekdays_text(clash.weekdays)} {clock_text(clash.start)},"
                    f" {clash.minutes} phút): một nơi không phát hai buổi cùng lúc",
                )
            elif old is None:
                ctx.session_defs.append(new)
            elif old != new:
                ctx.fail(
                    (*loc, "name"),
                    entry.name,
                    f"buổi {entry.name!r} của {where} đã có và khác tệp"
                    f" ({weekdays_text(old.weekdays)} {clock_text(old.start)}, {old.minutes}"
                    " phút): tệp kế hoạch không sửa buổi đã có; sửa nó trong bảng điều khiển,"
                    " hoặc đặt tên khác",
                )
    _check_exceptions(ctx)


def _check_exceptions(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        known = set(stored_changes(conn))
    for i, entry in enumerate(ctx.pf.session_exceptions):
        loc = ("session_exceptions", i)
        scopes = _scopes(ctx, loc, entry.units, entry.group, entry.unit_kind, required=False)
        start: time | None = None
        minutes: int | None = None
        if entry.action == ADD:
            if not entry.session:
                ctx.fail((*loc, "session"), entry.session, "a session added needs its name")
            if entry.start is None or entry.length is None:
                ctx.fail((*loc, "start"), entry.start, "a session added needs start and length")
                continue
            start = _clock(ctx, (*loc, "start"), entry.start)
            minutes = _minutes(ctx, (*loc, "length"), entry.length)
            if start is None or minutes is None:
                continue
        elif entry.start is not None or entry.length is not None:
            ctx.fail(
                (*loc, "start"),
                entry.start,
                'a cancelled day takes no start or length (action = "add" adds a session)',
            )
            continue
        for where in scopes or [""]:
            change = DayChange(
                entry.date,
                ADD if entry.action == ADD else CANCEL,
                where,
                entry.session,
                start,
                minutes,
                entry.note,
            )
            if change not in known:
                ctx.session_changes.append(change)


def _stored_sessions(ctx: Context) -> dict[tuple[str, str], SessionDef]:
    table = BroadcastSession.__table__
    with ctx.engine.connect() as conn:
        return {(r.scope, r.name): def_of(r) for r in conn.execute(select(table))}


def _scopes(
    ctx: Context,
    loc: tuple[object, ...],
    units: list[str],
    group: str | None,
    unit_kind: str | None,
    *,
    required: bool,
) -> list[str]:
    values: dict[str, object] = {"units": units, "group": group, "unit_kind": unit_kind}
    given = [name for name, value in values.items() if value]
    if len(given) > 1:
        ctx.fail(
            (*loc, given[1]),
            values[given[1]],
            f"give one of units, group, unit_kind (this one also has {given[0]})",
        )
        return []
    if not given:
        if required:
            ctx.fail((*loc, "units"), None, "whose session is it? give units, group or unit_kind")
        return []
    if units:
        out = []
        for code in units:
            try:
                out.append(scope(UNIT, ctx.units.current_for(code)))
            except ValueError as exc:
                ctx.fail((*loc, "units"), code, getattr(exc, "reason", str(exc)))
        return out
    if group:
        if group not in ctx.existing_groups and group not in ctx.file_groups:
            ctx.fail((*loc, "group"), group, "no group with this name")
            return []
        return [scope(GROUP, group)]
    kind = kind_word(unit_kind or "")
    if kind not in KINDS:
        ctx.fail((*loc, "unit_kind"), unit_kind, f"not a kind of unit: {', '.join(KINDS)}")
        return []
    return [scope(KIND, kind)]


def _weekdays(ctx: Context, loc: tuple[object, ...], value: Any) -> frozenset[int] | None:
    try:
        return parse_weekdays(value)
    except ValueError as exc:
        ctx.fail(loc, value, str(exc))
        return None


def _clock(ctx: Context, loc: tuple[object, ...], value: Any) -> time | None:
    try:
        return parse_clock(value)
    except ValueError as exc:
        ctx.fail(loc, str(value), str(exc))
        return None


def _minutes(ctx: Context, loc: tuple[object, ...], value: Any) -> int | None:
    try:
        length = duration_within(value, timedelta(minutes=1), LONGEST)
    except ValueError as exc:
        ctx.fail(loc, value, str(exc))
        return None
    if length.total_seconds() % 60:
        ctx.fail(loc, value, "a session lasts whole minutes")
        return None
    return int(length.total_seconds() // 60)
