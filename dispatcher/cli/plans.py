"""`coso plan`, `coso schedule`, `coso log` and `coso deliveries`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coso.clock import local_text
from coso.commands import current_settings, guard, open_database, out, parse_day
from coso.csvfile import not_a_folder
from coso.labels import event_label, priority_label, state_label
from coso.names import check_arguments, nfc

plan_app = typer.Typer(no_args_is_help=True, help="Plans: import (or update), list, show.")
schedule_app = typer.Typer(no_args_is_help=True, help="Schedules: preview, enable, disable.")


@plan_app.command("import")
@guard
def plan_import(
    file: Path,
    update_plan: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Cập nhật kế hoạch đã có cùng số: in ra các thay đổi rồi áp dụng khi được"
            " xác nhận.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Với --update: áp dụng không cần hỏi.")
    ] = False,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Với --update: người sửa (mặc định: tên đăng nhập)."),
    ] = None,
) -> None:
    """Import a plan with its content, endpoints, groups and schedules from a TOML file; with
    --update, change the plan of the same number to what the file says."""
    check_arguments(by=by)
    settings = current_settings()
    engine = open_database(settings)
    if update_plan:
        _update_plan(engine, settings, not_a_folder(file), yes, by)
        return
    from schedules.importer import import_plan_file

    plan = import_plan_file(engine, settings, not_a_folder(file), datetime.now(UTC))
    out.print(f"imported plan {plan.number} (id {plan.id}): {plan.title}")


def _update_plan(engine: Any, settings: Any, file: Path, yes: bool, by: str | None) -> None:
    from content.versions import pending_draft
    from dispatcher.cli.catalogue import login_name
    from schedules.plan_import.changes import NO_CHANGES
    from schedules.plan_import.update import apply_update, check_update

    found = check_update(engine, settings, file, datetime.now(UTC))
    if not found.changes:
        out.print(f"{found.number}: {NO_CHANGES}")
        return
    table = Table(
        "phần", "thay đổi", "chi tiết", title=f"{found.number}: {len(found.changes)} thay đổi"
    )
    for change in found.changes:
        table.add_row(change.section_name, change.action_name, change.description)
    out.print(table)
    if not yes and not typer.confirm("Áp dụng các thay đổi này?", default=False):
        out.print("không thay đổi gì")
        raise typer.Exit(1)
    plan = apply_update(engine, found, by if by is not None else login_name(), datetime.now(UTC))
    if found.stored is None:
        out.print(f"imported plan {plan.number} (id {plan.id}): {plan.title}")
        return
    out.print(f"đã cập nhật kế hoạch {plan.number} (id {plan.id}): {len(found.changes)} thay đổi")
    for change in found.changes:
        if change.section != "content" or change.stored_id is None:
            continue
        draft = pending_draft(engine, change.stored_id)
        if draft is not None:
            out.print(
                f"{change.subject}: phiên bản {draft.version} chờ duyệt, phiên bản đã duyệt vẫn"
                f" được gửi — coso content approve {plan.number} {change.subject} --version"
                f" {draft.version} --by TÊN",
                soft_wrap=True,
            )


@plan_app.command("list")
@guard
def plan_list() -> None:
    """List plans."""
    from dispatcher.queries import list_plans

    table = Table("id", "number", "title", "period", "zone")
    for p in list_plans(open_database(current_settings())):
        table.add_row(
            str(p.id),
            p.number,
            p.title,
            f"{p.period_start:%d/%m/%Y}–{p.period_end:%d/%m/%Y}",
            p.zone,
        )
    out.print(table)


@plan_app.command("export")
@guard
def plan_export(plan: str) -> None:
    """A plan as a plan file (the newest version of each content item; audio not named):
    edit it and give it back to `coso plan import --update`."""
    check_arguments(plan=plan)
    import sys

    from dispatcher.queries import find_plan
    from schedules.plan_export import plan_document, plan_text, stored_plan

    engine = open_database(current_settings())
    stored = stored_plan(engine, find_plan(engine, nfc(plan)).number)
    assert stored is not None
    sys.stdout.write(plan_text(plan_document(stored)))


@plan_app.command("show")
@guard
def plan_show(plan: str) -> None:
    """A plan with its targets, schedules and delivery counts."""
    check_arguments(plan=plan)
    from dispatcher.queries import delivery_counts, find_plan, plan_schedules
    from schedules.timing_form import timing_form, timing_words

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    out.print(f"[bold]{p.number}[/] — {p.title}")
    out.print(
        f"issuer: {p.issuer}   period: {p.period_start:%d/%m/%Y}–{p.period_end:%d/%m/%Y}"
        f"   zone: {p.zone}"
    )
    table = Table("id", "schedule", "channel", "timing", "priority", "enabled")
    for s in plan_schedules(engine, p.id):
        timing = timing_words(s)
        if s.rrule and timing_form(s.start_local, s.rrule, s.until_local) is None:
            timing += f"\n{s.rrule}"  # words in general terms: the rule itself too
        table.add_row(
            str(s.id),
            s.name,
            s.channel,
            timing,
            priority_label(s.priority),
            "yes" if s.enabled else "no",
        )
    out.print(table)
    counts = Table("channel", "state", "deliveries")
    for (channel, state), n in sorted(delivery_counts(engine, p.id).items()):
        counts.add_row(channel, state_label(state), str(n))
    out.print(counts)


@schedule_app.command("preview")
@guard
def schedule_preview(
    plan: str,
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days ahead.")] = 7,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (dd/mm/yyyy); default today.")
    ] = None,
) -> None:
    """What would go out where and when; sends nothing."""
    check_arguments(plan=plan)
    from dispatcher.queries import find_plan
    from dispatcher.rotation_picks import turns
    from schedules.preview import plan_programmes, preview

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    first = parse_day(start, p.zone, "from") or datetime.now(UTC)
    rows = preview(engine, p.id, first, days, partial(turns, engine))
    table = Table(
        "when",
        "schedule",
        "channel",
        "content",
        "priority",
        "endpoints",
        "units",
        title=f"{p.number}: {days} days from {local_text(first, p.zone)}",
    )
    for r in rows:
        table.add_row(
            local_text(r.when, p.zone),
            r.schedule,
            r.channel,
            r.content,
            r.priority,
            str(r.endpoints),
            str(r.units),
        )
    out.print(table)
    out.print(f"{len(rows)} occurrences, {sum(r.endpoints for r in rows)} deliveries")
    sessions = plan_programmes(engine, current_settings(), p.id, first, days, p.zone)
    if sessions:
        out.print(programme_table(sessions, p.zone))


def programme_table(sessions: list[Any], tz: str) -> Table:
    """Each session's programme, in playing order, with the time left."""
    from schedules.session_queue import minutes_text

    table = Table("buổi phát", "đơn vị", "chương trình", "còn trống", title="Buổi phát")
    for s in sessions:
        items = "\n".join(
            f"{i}. {b.title} ({minutes_text(b.seconds)})" for i, b in enumerate(s.items, 1)
        )
        table.add_row(
            f"{s.session.name} {local_text(s.session.at, tz)} ({s.session.minutes} phút)",
            s.place.name,
            items or "—",
            minutes_text(s.left),
        )
    return table


@schedule_app.command("enable")
@guard
def schedule_enable(schedule_id: int) -> None:
    """Enable a schedule (its content must be approved); slots from now on fire."""
    from schedules.editing import set_enabled

    set_enabled(open_database(current_settings()), schedule_id, True, datetime.now(UTC))
    out.print(f"schedule {schedule_id} enabled")


@schedule_app.command("disable")
@guard
def schedule_disable(schedule_id: int) -> None:
    """Disable a schedule; deliveries already queued still go out."""
    from schedules.editing import set_enabled

    set_enabled(open_database(current_settings()), schedule_id, False, datetime.now(UTC))
    out.print(f"schedule {schedule_id} disabled")


@guard
def log_command(
    plan: str,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    unit: Annotated[
        str | None, typer.Option(help="Only this unit and the units below it (a province: all).")
    ] = None,
    state: Annotated[str | None, typer.Option(help="Only entries with this state.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date (dd/mm/yyyy).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date (dd/mm/yyyy).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many entries; 0: all.")] = 200,
) -> None:
    """The plan's activity log, newest first."""
    check_arguments(plan=plan, channel=channel, unit=unit, state=state)
    from dispatcher.queries import LogFilter, activity, find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    from coso.units import unit_tree

    f = LogFilter(
        channel=channel,
        units=frozenset(unit_tree(engine).below(unit) | {unit}) if unit else None,
        state=state,
        since=parse_day(since, p.zone, "since"),
        until=parse_day(until, p.zone, "until") + timedelta(days=1) if until else None,
        limit=limit + 1 if limit else None,  # one more: to tell whether the list was cut
    )
    table = Table(
        "time",
        "channel",
        "unit",
        "endpoint",
        "event",
        "state",
        "actor",
        "detail",
        title=f"{p.number}: activity",
    )
    entries = activity(engine, p.id, f)
    cut = bool(limit) and len(entries) > limit
    for e in entries[:limit] if limit else entries:
        table.add_row(
            local_text(e.at, p.zone, seconds=True),  # entries in the same minute keep their order
            e.channel,
            e.unit_code or "",
            e.address or "",
            event_label(e.event),
            state_label(e.state),
            e.actor,
            e.detail or "",
        )
    out.print(table)
    if cut:
        out.print(f"the newest {limit} entries; --limit 0 for all")


@guard
def deliveries_command(
    plan: str,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """The plan's deliveries, newest slot first."""
    check_arguments(plan=plan, state=state, channel=channel)
    from dispatcher.queries import deliveries, find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    table = Table(
        "id",
        "slot",
        "channel",
        "endpoint",
        "unit",
        "state",
        "attempts",
        "provider id",
        "last error",
        title=f"{p.number}: deliveries",
    )
    for d in deliveries(engine, p.id, state, channel, limit):
        table.add_row(
            str(d.id),
            local_text(d.scheduled_for, p.zone),
            d.channel,
            d.address,
            d.unit_code or "",
            state_label(d.state),
            str(d.attempts),
            d.provider_id or "",
            d.last_error or "",
        )
    out.print(table)
