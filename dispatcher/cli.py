"""The `coso` command line: a thin layer over functions the tests call directly."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coso.clock import SystemClock, as_utc, local_text, zone
from coso.config import Settings, load_settings
from coso.errors import CosoError, InputError, InputErrors
from coso.setup import open_database

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="coso: campaign scheduler and dispatcher for grassroots information channels.",
)
plan_app = typer.Typer(no_args_is_help=True, help="Plans: import, list, show.")
schedule_app = typer.Typer(no_args_is_help=True, help="Schedules: preview.")
units_app = typer.Typer(no_args_is_help=True, help="Administrative units.")
endpoints_app = typer.Typer(no_args_is_help=True, help="Endpoints: import, list.")
app.add_typer(endpoints_app, name="endpoints")
content_app = typer.Typer(no_args_is_help=True, help="Content items: list, approve, retire.")
app.add_typer(content_app, name="content")
app.add_typer(plan_app, name="plan")
app.add_typer(schedule_app, name="schedule")
app.add_typer(units_app, name="units")

out = Console()
err = Console(stderr=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file (TOML).")]


class State:
    config: Path | None = None


def _settings() -> Settings:
    return load_settings(State.config)


@app.callback()
def main(config: ConfigOption = None) -> None:
    State.config = config


def run() -> None:
    """Entry point that turns coso's errors into a message and exit code 2."""
    try:
        app()
    except CosoError as exc:
        _report(exc)
        raise SystemExit(2) from exc


def _report(exc: CosoError) -> None:
    errors = exc.errors if isinstance(exc, InputErrors) else [exc]
    for e in errors:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)


def _guard(fn):  # type: ignore[no-untyped-def]
    """Commands report coso errors as a clear message with exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except CosoError as exc:
            _report(exc)
            raise typer.Exit(2) from exc

    return wrapper


@app.command()
@_guard
def init() -> None:
    """Create the database, apply migrations and load the current administrative units."""
    from coso.units import count_units

    settings = _settings()
    engine = open_database(settings)
    counts = count_units(engine)
    out.print(f"database ready: {settings.database.url}")
    out.print(f"administrative units: {counts}")


@app.command()
@_guard
def serve(
    demo: Annotated[bool, typer.Option(help="Load the demo plan (a post every minute).")] = False,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the web app, the timer and the dispatcher in one process."""
    import uvicorn

    from dispatcher.demo import load_demo
    from dispatcher.service import Dispatcher
    from dispatcher.web import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "apscheduler", "pyrate_limiter"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings()
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    listener = _listen(bind_host, bind_port)  # before anything starts: a taken port stops here
    clock = SystemClock()
    engine = open_database(settings)
    if demo and load_demo(engine, settings, clock.now()):
        out.print("demo plan loaded: a bulletin post goes out every minute")
    dispatcher = Dispatcher(engine, settings, clock)
    server = uvicorn.Server(uvicorn.Config(create_app(engine, settings), log_level="warning"))
    dispatcher.start()
    out.print(f"coso serving on http://{bind_host}:{bind_port}/  (bulletin: /bulletin)")
    try:
        server.run(sockets=[listener])
    finally:
        dispatcher.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        reason = f"cannot listen on {host}:{port}: {exc.strerror}"
        raise InputError("server.port", port, reason) from exc
    listener.listen(2048)
    return listener


@plan_app.command("import")
@_guard
def plan_import(file: Path) -> None:
    """Import a plan with its content, endpoints, groups and schedules from a TOML file."""
    from schedules.importer import import_plan_file

    settings = _settings()
    engine = open_database(settings)
    plan = import_plan_file(engine, settings, file, datetime.now(UTC))
    out.print(f"imported plan {plan.number} (id {plan.id}): {plan.title}")


@plan_app.command("list")
@_guard
def plan_list() -> None:
    """List plans."""
    from dispatcher.queries import list_plans

    table = Table("id", "number", "title", "period", "zone")
    for p in list_plans(open_database(_settings())):
        table.add_row(
            str(p.id),
            p.number,
            p.title,
            f"{p.period_start:%d/%m/%Y}–{p.period_end:%d/%m/%Y}",
            p.zone,
        )
    out.print(table)


@plan_app.command("show")
@_guard
def plan_show(plan: str) -> None:
    """A plan with its targets, schedules and delivery counts."""
    from dispatcher.queries import delivery_counts, find_plan, plan_schedules

    engine = open_database(_settings())
    p = find_plan(engine, plan)
    out.print(f"[bold]{p.number}[/] — {p.title}")
    out.print(
        f"issuer: {p.issuer}   period: {p.period_start:%d/%m/%Y}–{p.period_end:%d/%m/%Y}"
        f"   zone: {p.zone}"
    )
    table = Table("id", "schedule", "channel", "timing", "priority", "enabled")
    for s in plan_schedules(engine, p.id):
        timing = f"{s.start_local}" + (f"  {s.rrule}" if s.rrule else " (once)")
        table.add_row(
            str(s.id), s.name, s.channel, timing, s.priority, "yes" if s.enabled else "no"
        )
    out.print(table)
    counts = Table("channel", "state", "deliveries")
    for (channel, state), n in sorted(delivery_counts(engine, p.id).items()):
        counts.add_row(channel, state, str(n))
    out.print(counts)


@schedule_app.command("preview")
@_guard
def schedule_preview(
    plan: str,
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days ahead.")] = 7,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (dd/mm/yyyy); default today.")
    ] = None,
) -> None:
    """What would go out where and when; sends nothing."""
    from dispatcher.queries import find_plan
    from schedules.preview import preview

    engine = open_database(_settings())
    p = find_plan(engine, plan)
    first = _day(start, p.zone, "from") or datetime.now(UTC)
    rows = preview(engine, p.id, first, days)
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


@schedule_app.command("enable")
@_guard
def schedule_enable(schedule_id: int) -> None:
    """Enable a schedule (its content must be approved); slots from now on fire."""
    from schedules.editing import set_enabled

    set_enabled(open_database(_settings()), schedule_id, True, datetime.now(UTC))
    out.print(f"schedule {schedule_id} enabled")


@schedule_app.command("disable")
@_guard
def schedule_disable(schedule_id: int) -> None:
    """Disable a schedule; deliveries already queued still go out."""
    from schedules.editing import set_enabled

    set_enabled(open_database(_settings()), schedule_id, False, datetime.now(UTC))
    out.print(f"schedule {schedule_id} disabled")


@content_app.command("list")
@_guard
def content_list(plan: str) -> None:
    """A plan's content items and their approval state."""
    from content.approval import list_content
    from dispatcher.queries import find_plan

    engine = open_database(_settings())
    p = find_plan(engine, plan)
    table = Table("key", "kind", "title", "state", "approved by", "approved at")
    for c in list_content(engine, p.id):
        table.add_row(
            c.key,
            c.kind,
            c.title,
            c.state,
            c.approved_by or "",
            local_text(c.approved_at, p.zone) if c.approved_at else "",
        )
    out.print(table)


@content_app.command("approve")
@_guard
def content_approve(
    plan: str, key: str, by: Annotated[str, typer.Option("--by", help="Who approves it.")]
) -> None:
    """Approve a draft content item so schedules can send it."""
    from content.approval import set_state
    from dispatcher.queries import find_plan

    engine = open_database(_settings())
    set_state(engine, find_plan(engine, plan).id, key, "approved", by, datetime.now(UTC))
    out.print(f"{key}: approved by {by}")


@content_app.command("retire")
@_guard
def content_retire(plan: str, key: str) -> None:
    """Retire a content item: deliveries not yet sent fail instead of going out."""
    from content.approval import set_state
    from dispatcher.queries import find_plan

    engine = open_database(_settings())
    set_state(engine, find_plan(engine, plan).id, key, "retired", "", datetime.now(UTC))
    out.print(f"{key}: retired")


def _day(value: str | None, tz: str, name: str) -> datetime | None:
    if value is None:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return as_utc(datetime.strptime(value, fmt).replace(tzinfo=zone(tz)))
        except ValueError:
            continue

    raise InputError(name, value, "not a date like 21/04/2021 or 2021-04-21")


@app.command("log")
@_guard
def log_command(
    plan: str,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    unit: Annotated[str | None, typer.Option(help="Only this administrative unit code.")] = None,
    state: Annotated[str | None, typer.Option(help="Only entries with this state.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date (dd/mm/yyyy).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date (dd/mm/yyyy).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """The plan's activity log, newest first."""
    from dispatcher.queries import LogFilter, activity, find_plan

    engine = open_database(_settings())
    p = find_plan(engine, plan)
    f = LogFilter(
        channel=channel,
        unit=unit,
        state=state,
        since=_day(since, p.zone, "since"),
        until=_day(until, p.zone, "until") + timedelta(days=1) if until else None,
        limit=limit,
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
    for e in activity(engine, p.id, f):
        table.add_row(
            local_text(e.at, p.zone),
            e.channel,
            e.unit_code or "",
            e.address or "",
            e.event,
            e.state or "",
            e.actor,
            e.detail or "",
        )
    out.print(table)


@app.command("deliveries")
@_guard
def deliveries_command(
    plan: str,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """The plan's deliveries, newest slot first."""
    from dispatcher.queries import deliveries, find_plan

    engine = open_database(_settings())
    p = find_plan(engine, plan)
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
            d.state,
            str(d.attempts),
            d.provider_id or "",
            d.last_error or "",
        )
    out.print(table)


@endpoints_app.command("import")
@_guard
def endpoints_import(file: Path) -> None:
    """Add endpoints from a CSV (channel,address,name,unit); all or nothing."""
    from channels.endpoints import add_endpoints, list_endpoints, read_endpoints_csv

    engine = open_database(_settings())
    rows = read_endpoints_csv(engine, file)
    before = len(list_endpoints(engine, None, None, 10**9))
    add_endpoints(engine, rows, datetime.now(UTC))
    added = len(list_endpoints(engine, None, None, 10**9)) - before
    out.print(f"{added} endpoints added, {len(rows) - added} already known, from {file}")


@endpoints_app.command("list")
@_guard
def endpoints_list(
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    unit: Annotated[str | None, typer.Option(help="Only in this unit (and below).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """Endpoints, by channel and address."""
    from channels.endpoints import list_endpoints

    engine = open_database(_settings())
    table = Table("id", "channel", "address", "name", "unit", "enabled")
    for e in list_endpoints(engine, channel, unit, limit):
        table.add_row(
            str(e.id), e.channel, e.address, e.name, e.unit_code or "", "yes" if e.enabled else "no"
        )
    out.print(table)


@units_app.command("import-legacy")
@_guard
def units_import_legacy(file: Path) -> None:
    """Import pre-2025 units with their mapping to current codes (CSV)."""
    from coso.units import import_legacy_units

    n = import_legacy_units(open_database(_settings()), file)
    out.print(f"imported {n} legacy units from {file}")


@units_app.command("show")
@_guard
def units_show(code: str) -> None:
    """A unit and every current unit under it."""
    from coso.units import resolve_unit_codes, unit_names

    engine = open_database(_settings())
    codes = resolve_unit_codes(engine, [code])[code]
    names = unit_names(engine, codes)
    out.print(f"{code}: {len(codes)} current unit(s)")
    for c in sorted(codes)[:50]:
        out.print(f"  {c}  {names.get(c, '')}")


if __name__ == "__main__":
    run()
