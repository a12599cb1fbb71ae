"""`coso serve`: the web app, the timer and the dispatcher in one process (`--role all`), or
apart: `--role web` serves the web app alone, `--role dispatcher` runs the timer (when it
holds the timer lock), the senders and the channels' services, with `/healthz` alone on
its port. With PostgreSQL, several of each share one database (docs/operations.md)."""

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
from coso.commands import current_settings, guard, open_database, out
from coso.config import NAME_PATTERN
from coso.errors import InputError

log = logging.getLogger("coso.serve")
ROLES = ("all", "dispatcher", "web")


def check_role(role: str, demo: bool) -> str:
    if role not in ROLES:
        raise InputError("--role", role, f"phải là một trong {', '.join(ROLES)}")
    if demo and role != "all":
        raise InputError("--demo", role, "bản demo chỉ chạy với --role all (mọi phần trong một)")
    return role


def check_name(name: str) -> str:
    if name and not NAME_PATTERN.fullmatch(name):
        raise InputError(
            "--name", name, "chỉ gồm chữ cái, chữ số, '-', '_' và '.' (tối đa 64 ký tự)"
        )
    return name


def claim_name(engine: Any, name: str) -> Any:
    """The lock that says this dispatcher runs under `name`; InputError when another live
    dispatcher on this database has it (their MQTT clients would throw each other off)."""
    from dispatcher.leader import NameLock

    lock = NameLock(engine, name)
    if not lock.try_acquire():
        if name:
            raise InputError(
                "--name", name, "một bộ điều phối khác đang chạy dưới tên này trên cơ sở dữ liệu"
            )
        raise InputError(
            "--name",
            "",
            "một bộ điều phối khác đang chạy không có tên trên cơ sở dữ liệu này: mỗi bộ "
            "điều phối cần một tên riêng (--name hoặc dispatcher.name)",
        )
    return lock


def health_app(health: Any) -> Any:
    """A dispatcher's HTTP listener: `/healthz` alone (the web app runs apart)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from dispatcher.web.app import health_report

    def healthz(_request: Any) -> JSONResponse:
        parts = health()
        ok = all(p.ok for p in parts)
        return JSONResponse(health_report(parts), status_code=200 if ok else 503)

    return Starlette(routes=[Route("/healthz", healthz)])


@guard
def serve_command(
    demo: Annotated[bool, typer.Option(help="Load the demo plan (a post every minute).")] = False,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    role: Annotated[
        str,
        typer.Option(
            help="all: web app, timer and dispatcher; dispatcher: timer, senders and channel "
            "services (only /healthz on the port); web: the web app alone."
        ),
    ] = "all",
    name: Annotated[
        str | None,
        typer.Option(help="This dispatcher's name among several (dispatcher.name)."),
    ] = None,
) -> None:
    """Run the web app, the timer and the dispatcher, in one process or apart (--role)."""
    from coso.memory import settle_after_startup, tune_allocator

    tune_allocator()  # before the threads start
    import uvicorn

    from coso.config import ServerSettings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "apscheduler", "pyrate_limiter"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    check_role(role, demo)
    settings = current_settings()
    if name is not None:
        settings.dispatcher.name = check_name(name)
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    listener = _listen(bind_host, bind_port)  # before anything starts: a taken port stops here
    if settings.server.public_url == ServerSettings().public_url:  # players fetch media here
        if role == "dispatcher":
            log.warning(
                "server.public_url is not set: players are told to fetch media from %s; set "
                "it to the web app's address (this process serves only /healthz)",
                settings.server.public_url,
            )
        else:
            settings.server.public_url = f"http://{bind_host}:{bind_port}"
    clock = SystemClock()
    engine = open_database(settings)
    simulated = ExitStack()  # demo endpoints: stopped first, while the dispatcher listens
    with ExitStack() as local:
        dispatcher = None
        if role != "web":
            local.callback(claim_name(engine, settings.dispatcher.name).release)
        if role == "all":
            # What a channel needs on this machine when its settings name none (a broker).
            # Processes apart share what the settings name: none starts its own.
            for plugin, cfg in registry.each(settings, "local_services"):
                said = local.enter_context(plugin.local_services(cfg))  # type: ignore[misc]
                if said:
                    out.print(said)
        if demo:
            _load_demo(settings, engine, clock, simulated)
        if role != "web":
            from dispatcher.service import Dispatcher

            dispatcher = Dispatcher(engine, settings, clock)
        if role == "dispatcher":
            assert dispatcher is not None
            web = health_app(dispatcher.health)
        else:
            from dispatcher.web.app import create_app

            web = create_app(
                engine, settings, health=dispatcher.health if dispatcher is not None else None
            )
        server = uvicorn.Server(uvicorn.Config(web, log_level="warning"))
        if dispatcher is not None:
            dispatcher.start()
        settle_after_startup()
        out.print(_started(role, settings.dispatcher.name, bind_host, bind_port), soft_wrap=True)
        try:
            server.run(sockets=[listener])
        finally:
            simulated.close()
            if dispatcher is not None:
                dispatcher.stop()


def _started(role: str, name: str, host: str, port: int) -> str:
    address = f"http://{host}:{port}"
    if role == "web":
        return f"coso web app on {address}/  (bulletin: /bulletin; timer and senders run apart)"
    if role == "dispatcher":
        called = f" {name}" if name else ""
        return f"coso dispatcher{called} running; health on {address}/healthz"
    return f"coso serving on {address}/  (bulletin: /bulletin)"


def _load_demo(settings: Any, engine: Any, clock: SystemClock, simulated: ExitStack) -> None:
    from dispatcher.cli.demo import demo_logins, load_demo_apart, start_demo_endpoints

    if load_demo_apart(settings, clock.now()):
        out.print("demo plan loaded: a bulletin post and a broadcast go out every minute")
    folder = Path(settings.console.secret_file).parent
    out.print(f"demo logins for the console (also in {folder / 'demo-logins.txt'}):")
    for line in demo_logins(engine, folder, clock.now()):
        out.print(f"  {line}", highlight=False)
    simulated.callback(time.sleep, 0.5)  # let coso record them offline
    for endpoints in start_demo_endpoints(engine, settings):
        simulated.callback(endpoints.stop)


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
