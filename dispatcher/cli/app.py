"""The `coso` command line: a thin layer over functions the tests call directly."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from channels import registry
from coso.clock import SystemClock
from coso.commands import State, current_settings, guard, open_database, out, report
from coso.errors import CosoError, InputError
from coso.memory import settle_after_startup, tune_allocator
from dispatcher.cli.catalogue import content_app, endpoints_app, units_app
from dispatcher.cli.devices import devices_command
from dispatcher.cli.emergency import emergency_app
from dispatcher.cli.plans import deliveries_command, log_command, plan_app, schedule_app
from dispatcher.cli.report import report_command
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


@app.command()
@guard
def serve(
    demo: Annotated[bool, typer.Option(help="Load the demo plan (a post every minute).")] = False,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the web app, the timer and the dispatcher in one process."""
    tune_allocator()  # before the threads start
    import uvicorn

    from coso.config import ServerSettings
    from dispatcher.service import Dispatcher
    from dispatcher.web.app import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "apscheduler", "pyrate_limiter"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = current_settings()
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    listener = _listen(bind_host, bind_port)  # before anything starts: a taken port stops here
    if settings.server.public_url == ServerSettings().public_url:  # players fetch media here
        settings.server.public_url = f"http://{bind_host}:{bind_port}"
    clock = SystemClock()
    engine = open_database(settings)
    simulated = ExitStack()  # demo endpoints: stopped first, while the dispatcher listens
    with ExitStack() as local:
        # What a channel needs on this machine when its settings name none (a broker).
        for plugin, cfg in registry.each(settings, "local_services"):
            said = local.enter_context(plugin.local_services(cfg))  # type: ignore[misc]
            if said:
                out.print(said)
        if demo:
            from dispatcher.cli.demo import load_demo_apart, start_demo_endpoints

            if load_demo_apart(settings, clock.now()):
                out.print("demo plan loaded: a bulletin post and a broadcast go out every minute")
            from dispatcher.cli.demo import demo_logins

            folder = Path(settings.console.secret_file).parent
            out.print(f"demo logins for the console (also in {folder / 'demo-logins.txt'}):")
            for line in demo_logins(engine, folder, clock.now()):
                out.print(f"  {line}", highlight=False)
            simulated.callback(time.sleep, 0.5)  # let coso record them offline
            for endpoints in start_demo_endpoints(engine, settings):
                simulated.callback(endpoints.stop)
        dispatcher = Dispatcher(engine, settings, clock)
        web = create_app(engine, settings, health=dispatcher.health)
        server = uvicorn.Server(uvicorn.Config(web, log_level="warning"))
        dispatcher.start()
        settle_after_startup()
        out.print(f"coso serving on http://{bind_host}:{bind_port}/  (bulletin: /bulletin)")
        try:
            server.run(sockets=[listener])
        finally:
            simulated.close()
            dispatcher.stop()


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


app.add_typer(plan_app, name="plan")
app.add_typer(schedule_app, name="schedule")
app.add_typer(content_app, name="content")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(units_app, name="units")
app.add_typer(users_app, name="users")
app.add_typer(sessions_app, name="sessions")
app.add_typer(emergency_app, name="emergency")
app.command("log")(log_command)
app.command("deliveries")(deliveries_command)
app.command("report")(report_command)
app.command("devices")(devices_command)
for _plugin in registry.with_hook("cli"):
    _plugin.cli(app)  # type: ignore[misc]


if __name__ == "__main__":
    run()
