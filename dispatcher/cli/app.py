"""The `coso` command line: a thin layer over functions the tests call directly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from channels import registry
from coso.commands import State, current_settings, guard, open_database, out, report
from coso.errors import CosoError
from dispatcher.cli.catalogue import content_app, endpoints_app, units_app
from dispatcher.cli.devices import devices_command
from dispatcher.cli.emergency import emergency_app
from dispatcher.cli.plans import deliveries_command, log_command, plan_app, schedule_app
from dispatcher.cli.report import report_command
from dispatcher.cli.serve import serve_command
from dispatcher.cli.sessions import sessions_app
from dispatcher.cli.users import users_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="coso: campaign scheduler and dispatcher for grassroots information channels.",
)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file (TOML).")]


@app.callback()
def main(config: ConfigOption = None) -> None:
    State.config = config


def _engine_host(*args: Any) -> Any:
    """The engine's services to a channel's commands (imported when one needs them)."""
    from dispatcher.host import EngineHost

    return EngineHost(*args)


State.checks.append(registry.check_settings)
State.make_host = _engine_host


def run() -> None:
    """Entry point that turns coso's errors into a message and exit code 2."""
    try:
        app()
    except CosoError as exc:
        report(exc)
        raise SystemExit(2) from exc


@app.command()
@guard
def init() -> None:
    """Create the database, apply migrations and load the current administrative units."""
    from coso.units import describe_unit_counts

    settings = current_settings()
    engine = open_database(settings)
    out.print(f"database ready: {settings.database.url}", soft_wrap=True)
    for line in describe_unit_counts(engine):
        out.print(line, soft_wrap=True)


@app.command("channels")
@guard
def channels_command() -> None:
    """The installed channels, and whether each is set up to send."""
    from rich.table import Table

    settings = current_settings()
    table = Table("kênh", "tên", "sẵn sàng")
    rows = registry.describe(settings)
    for name, title, ok, _hint in rows:
        table.add_row(name, title, "có" if ok else "chưa")
    out.print(table)
    for name, _title, ok, hint in rows:
        if not ok:
            out.print(f"{name}: {hint}", soft_wrap=True, highlight=False)


app.add_typer(plan_app, name="plan")
app.add_typer(schedule_app, name="schedule")
app.add_typer(content_app, name="content")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(units_app, name="units")
app.add_typer(users_app, name="users")
app.add_typer(sessions_app, name="sessions")
app.add_typer(emergency_app, name="emergency")
app.command("serve")(serve_command)
app.command("log")(log_command)
app.command("deliveries")(deliveries_command)
app.command("report")(report_command)
app.command("devices")(devices_command)
for _plugin in registry.with_hook("cli"):
    _plugin.cli(app)  # type: ignore[misc]


if __name__ == "__main__":
    run()
