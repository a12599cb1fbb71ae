"""`coso sessions`: broadcast sessions (buổi phát) by hand — list, add, remove, a day
cancelled or a session added on a day, and each unit's programme with the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from coso.clock import date_text, in_zone
from coso.commands import current_settings, guard, open_database, out
from coso.dates import read_date
from coso.errors import InputError
from coso.names import check_arguments
from coso.units import unit_tree
from coso.weektimes import clock_text, weekdays_text

sessions_app = typer.Typer(
    no_args_is_help=True,
    help="Broadcast sessions (buổi phát): list, add, remove, cancel a day, add one on a day,"
    " each unit's programme.",
)

UnitOption = Annotated[str | None, typer.Option("--unit", help="A commune-level unit's code.")]
GroupOption = Annotated[str | None, typer.Option("--group", help="An endpoint group's name.")]
KindOption = Annotated[
    str | None, typer.Option("--kind", help="Every unit of a kind: phường, xã, đặc khu.")
]
NoteOption = Annotated[str, typer.Option("--note", help="Why (a holiday's name).")]


def _where(
    engine: Any, unit: str | None, group: str | None, kind: str | None, *, required: bool
) -> str:
    from schedules.session_edits import group_names, read_scope, unit_kinds

    tree = unit_tree(engine)
    kinds: dict[str, str] = {}
    if unit:
        try:
            kinds = unit_kinds(engine, [tree.current_for(unit)])
        except InputError:
            kinds = {}
    return read_scope(
        tree,
        kinds,
        group_names(engine),
        unit=unit or "",
        group=group or "",
        kind=kind or "",
        required=required,
    )


def _today(settings: Any) -> Any:
    return in_zone(datetime.now(UTC), settings.timer.default_zone).date()


def _said(outcome: Any) -> None:
    for line in outcome.lines():
        out.print(line, soft_wrap=True, highlight=False)


@sessions_app.command("list")
@guard
def sessions_list(unit: UnitOption = None) -> None:
    """The sessions stored and the settings' defaults, with the coming exceptions; with
    --unit, the sessions that unit (or each commune below it) has, and where each comes
    from."""
    check_arguments(unit=unit)
    from schedules.session_edits import (
        origin_text,
        scope_text,
        stored_changes_by_id,
        stored_sessions,
    )
    from schedules.session_store import all_defs, config_defs, unit_places
    from schedules.sessions import sessions_for

    settings = current_settings()
    engine = open_database(settings)
    if unit:
        tree = unit_tree(engine)
        codes = sorted(tree.below(unit))
        places = unit_places(engine, codes, tree=tree)
        defs = all_defs(engine, settings)
        table = Table("đơn vị", "buổi", "ngày", "bắt đầu", "độ dài", "từ đâu", title="Buổi phát")
        for code in codes:
            place = places[code]
            if place.kind not in ("phường", "xã", "đặc khu"):
                continue
            found = sessions_for(place, defs)
            if not found:
                table.add_row(f"{place.name} ({code})", "—", "", "", "", "chưa có buổi nào")
            for d in found:
                table.add_row(
                    f"{place.name} ({code})",
                    d.name,
                    weekdays_text(d.weekdays),
                    clock_text(d.start),
                    f"{d.minutes} phút",
                    origin_text(d),
                )
        out.print(table)
        return
    table = Table("nơi", "buổi", "ngày", "bắt đầu", "độ dài", "ghi từ", title="Buổi phát")
    for _, d, plan_id in stored_sessions(engine):
        source = f"kế hoạch (id {plan_id})" if plan_id else "bảng điều khiển / lệnh"
        table.add_row(
            scope_text(d.scope),
            d.name,
            weekdays_text(d.weekdays),
            clock_text(d.start),
            f"{d.minutes} phút",
            source,
        )
    for d in config_defs(settings):
        table.add_row(
            scope_text(d.scope),
            d.name,
            weekdays_text(d.weekdays),
            clock_text(d.start),
            f"{d.minutes} phút",
            "cấu hình",
        )
    out.print(table)
    from schedules.session_edits import change_text

    today = _today(settings)
    days = Table("id", "ngày", "ngoại lệ", title="Ngày nghỉ, buổi thêm (từ hôm nay)")
    for change_id, change in stored_changes_by_id(engine):
        if change.day >= today:
            days.add_row(str(change_id), date_text(change.day), change_text(change))
    out.print(days)


@sessions_app.command("add")
@guard
def sessions_add(
    name: str,
    days: Annotated[str, typer.Option("--days", help='Week days: "T2-T6", "T2 T4 CN".')],
    start: Annotated[str, typer.Option("--start", help="Start, HH:MM (05:00).")],
    length: Annotated[str, typer.Option("--length", help="Length: 15, 15m, 1h30m.")],
    unit: UnitOption = None,
    group: GroupOption = None,
    kind: KindOption = None,
) -> None:
    """Add a session of a unit, a group or every unit of a kind; items of sessions it takes
    over move to the next with room, or nothing changes."""
    check_arguments(name=name, unit=unit, group=group, kind=kind, days=days)
    from schedules.session_edits import add_session, read_session

    settings = current_settings()
    engine = open_database(settings)
    where = _where(engine, unit, group, kind, required=True)
    new = read_session(where, name, days, start, length)
    _said(add_session(engine, settings, new, datetime.now(UTC)))


@sessions_app.command("remove")
@guard
def sessions_remove(
    name: str, unit: UnitOption = None, group: GroupOption = None, kind: KindOption = None
) -> None:
    """Remove a session; the items placed in its coming instances move to the next session
    with room within their range, or nothing changes and each that cannot is named."""
    check_arguments(name=name, unit=unit, group=group, kind=kind)
    from schedules.session_edits import remove_session

    settings = current_settings()
    engine = open_database(settings)
    where = _where(engine, unit, group, kind, required=True)
    _said(remove_session(engine, settings, where, name, datetime.now(UTC)))


@sessions_app.command("cancel")
@guard
def sessions_cancel(
    day: str,
    session: Annotated[
        str, typer.Option("--session", help="Only this session (default: every one).")
    ] = "",
    unit: UnitOption = None,
    group: GroupOption = None,
    kind: KindOption = None,
    note: NoteOption = "",
) -> None:
    """Cancel a day's sessions (a holiday) everywhere, or for a unit, a group or a kind; the
    items placed there move on, or nothing changes."""
    check_arguments(day=day, session=session, unit=unit, group=group, kind=kind, note=note)
    _change(day, "cancel", session, "", "", unit, group, kind, note)


@sessions_app.command("add-day")
@guard
def sessions_add_day(
    day: str,
    session: Annotated[str, typer.Option("--session", help="The added session's name.")],
    start: Annotated[str, typer.Option("--start", help="Start, HH:MM.")],
    length: Annotated[str, typer.Option("--length", help="Length: 15, 15m, 1h.")],
    unit: UnitOption = None,
    group: GroupOption = None,
    kind: KindOption = None,
    note: NoteOption = "",
) -> None:
    """Add a session on one day (a campaign's extra broadcast)."""
    check_arguments(day=day, session=session, unit=unit, group=group, kind=kind, note=note)
    _change(day, "add", session, start, length, unit, group, kind, note)


def _change(
    day: str,
    action: str,
    session: str,
    start: str,
    length: str,
    unit: str | None,
    group: str | None,
    kind: str | None,
    note: str,
) -> None:
    from schedules.session_edits import add_change, read_change

    settings = current_settings()
    engine = open_database(settings)
    where = _where(engine, unit, group, kind, required=False)
    change = read_change(where, day, action, session, start, length, note, _today(settings))
    _said(add_change(engine, settings, change, datetime.now(UTC)))


@sessions_app.command("remove-day")
@guard
def sessions_remove_day(exception_id: int) -> None:
    """Take back a day's exception (its id from `coso sessions list`)."""
    from schedules.session_edits import remove_change

    settings = current_settings()
    _said(remove_change(open_database(settings), settings, exception_id, datetime.now(UTC)))


@sessions_app.command("programme")
@guard
def sessions_programme(
    unit: Annotated[str, typer.Option("--unit", help="A commune-level unit's code.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First day (dd/mm/yyyy); default today.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=62, help="How many days.")] = 7,
) -> None:
    """Each session of the unit from that day on, its items in playing order (priority
    first, then as queued) and the time left."""
    check_arguments(unit=unit, start=start)
    from dispatcher.cli.plans import programme_table
    from schedules.session_store import programmes

    settings = current_settings()
    engine = open_database(settings)
    code = unit_tree(engine).current_for(unit)
    tz = settings.timer.default_zone
    first = read_date("from", start) if start else _today(settings)
    last = first + timedelta(days=days - 1)
    found = programmes(engine, settings, [code], first, last, tz)
    if not found:
        out.print(f"{code}: không có buổi phát nào từ {date_text(first)} đến {date_text(last)}")
        return
    table = programme_table(found, tz)
    table.title = f"Buổi phát {date_text(first)}–{date_text(last)}"
    out.print(table)
