"""The web app, assembled: the console (dispatcher/web/console.py), health, API docs, and
each set-up channel's routes (the bulletin, webhooks, media). Public routes (the bulletin,
signed webhooks, players' media) check their callers themselves; the console's router is
where the login will attach."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp

from channels import registry
from channels.host import Part
from coso.access import Forbidden
from coso.clock import Clock, SystemClock, date_text, local_text, time_text, weekday_text
from coso.config import Settings
from coso.labels import (
    actor_label,
    cap_outcome_label,
    cap_word_label,
    channel_label,
    content_state_label,
    device_status_label,
    emergency_state_label,
    event_label,
    period_label,
    priority_label,
    role_label,
    state_label,
)
from coso.weektimes import weekdays_text
from dispatcher.cap.desk import Emergencies, EmergencyDesk
from dispatcher.cap.routes import ALERTS_PATH, cap_api_router
from dispatcher.host import EngineHost
from dispatcher.supervisor import DatabaseProbe
from dispatcher.web.auth import (
    NotSignedIn,
    login_address,
    session_cookie_options,
    throttle_for,
    wants_json,
)
from dispatcher.web.body_limit import BodyLimit
from dispatcher.web.console import console_router
from dispatcher.web.device_paths import DevicePathsFirst, device_mounts
from dispatcher.web.telemetry import telemetry_config
from schedules.session_queue import minutes_text
from schedules.timing_form import timing_words

TEMPLATE_DIR = Path(__file__).parent / "templates"


def page_templates() -> Jinja2Templates:
    """coso's page templates, then each channel's own (its pages extend base.html)."""
    templates = Jinja2Templates(directory=TEMPLATE_DIR)
    folders = [TEMPLATE_DIR] + [Path(p.templates) for p in registry.with_hook("templates")]
    templates.env.loader = ChoiceLoader([FileSystemLoader(f) for f in folders])
    titles = {name: plugin.title for name, plugin in registry.plugins().items()}

    def channel(name: str | None, short: bool = True) -> str:
        return channel_label(name, titles, short)

    def actor(who: str | None) -> str:
        return actor_label(who, titles)

    # What pages show people: ids in Vietnamese (coso.labels), times in the plan's zone.
    templates.env.filters.update(
        local=local_text,  # {{ at | local(zone) }}, {{ at | local(zone, seconds=True) }}
        date=date_text,  # {{ day | date }}, {{ at | date(zone) }}
        time=time_text,  # {{ at | time(zone) }}, {{ at | time(zone, seconds=True) }}
        weekday=weekday_text,
        state=state_label,
        event=event_label,
        role=role_label,
        priority=priority_label,
        content_state=content_state_label,
        device_status=device_status_label,
        emergency_state=emergency_state_label,
        per=period_label,
        actor=actor,
        channel=channel,
        timing=schedule_timing_words,
        weekdays=weekdays_text,  # {{ session.weekdays | weekdays }}: "T2, T3, T4"
        minutes=minutes_text,  # {{ seconds | minutes }}: "5 phút", "1 phút 30 giây"
        cap_outcome=cap_outcome_label,
        cap_word=cap_word_label,
    )
    return templates


def schedule_timing_words(schedule: Any) -> str:
    """A schedule's timing in words ("Thứ hai đến thứ bảy, 05:30"): a row or anything with
    start_local, rrule and until_local."""
    return timing_words(schedule)


def create_app(
    engine: Engine,
    settings: Settings,
    clock: Clock | None = None,
    health: Callable[[], list[Part]] | None = None,
    emergencies: EmergencyDesk | None = None,
) -> FastAPI:
    """`health`: every part of the running service (`Dispatcher.health`); without it
    `/healthz` reports the database alone. `emergencies`: what CAP alerts declare with
    (default: this installation's emergency module)."""
    # The API docs (/api/docs, /redoc) with Swagger UI and ReDoc served by coso itself, not
    # from a CDN: they work without internet.
    app = FastAPIOffline(
        title="coso",
        docs_url="/api/docs",
        swagger_ui_parameters={"validatorUrl": None},
        telemetry=telemetry_config(),  # dispatcher/web/telemetry.py
    )
    templates = page_templates()
    host = EngineHost(engine, settings, clock or SystemClock())
    devices: list[Mount] = []
    for plugin, cfg in registry.each(settings, "routes"):
        if plugin.configured(cfg):  # an SMS account's webhooks only with an SMS account
            routes = plugin.routes(host, templates)  # type: ignore[misc]
            app.router.routes.extend(routes)
            devices += device_mounts(routes)

    database = DatabaseProbe(engine)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """One entry per part; 503 when any is stuck or dead."""
        parts = health() if health is not None else [database.check()]
        return JSONResponse(health_report(parts), status_code=200 if _all_ok(parts) else 503)

    # CAP alerts from agencies: a key per sender, no session (dispatcher/cap/routes.py).
    desk = emergencies if emergencies is not None else Emergencies(engine, settings)
    app.include_router(cap_api_router(engine, settings, host.clock, desk))

    # The console: every page takes the signed-in user's Access (dispatcher/web/auth.py).
    app.include_router(
        console_router(engine, settings, templates, host.clock, throttle_for(settings), desk)
    )

    @app.exception_handler(NotSignedIn)
    def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": "Cần đăng nhập."}, status_code=401)
        return RedirectResponse(login_address(request), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser gets a page in Vietnamese; programs get JSON as FastAPI gives it."""
        if wants_json(request) or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        page = templates.get_template("error.html").render(
            status=exc.status_code, reason=str(exc.detail)
        )
        return HTMLResponse(page, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Forbidden)
    def forbidden(request: Request, exc: Forbidden) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return HTMLResponse(
            templates.get_template("forbidden.html").render(reason=str(exc)), status_code=403
        )

    # Sessions in signed cookies (a cookie signed with another key is no session).
    app.add_middleware(SessionMiddleware, **session_cookie_options(settings))

    # Every route's body is limited before it is read (dispatcher/web/body_limit.py).
    from dispatcher.web.editing import UPLOAD_LIMITS
    from dispatcher.web.emergency_pages import UPLOAD_LIMITS as EMERGENCY_UPLOADS

    # A CAP document up to cap.max_bytes, and a little more: one too large is read, refused
    # and logged by dispatcher.cap rather than cut off unseen.
    cap_limit = {ALERTS_PATH: max(settings.cap.max_bytes * 2, 1024 * 1024)}
    limits = {**UPLOAD_LIMITS, **EMERGENCY_UPLOADS, **cap_limit}
    app.add_middleware(BodyLimit, limits=limits)

    # Devices' and gateways' requests skip the console's stack (dispatcher/web/device_paths.py).
    whole_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return DevicePathsFirst(
            whole_stack(), devices, lambda inner: BodyLimit(inner, limits=limits)
        )

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    return app


def _all_ok(parts: list[Part]) -> bool:
    return all(p.ok for p in parts)


def health_report(parts: list[Part]) -> dict[str, Any]:
    """{"status": "ok" | "failing", "parts": {name: {ok, detail, last_seen}}}."""
    return {
        "status": "ok" if _all_ok(parts) else "failing",
        "parts": {
            p.name: {
                "ok": p.ok,
                "detail": p.detail,
                "last_seen": p.last_seen.isoformat(timespec="seconds") if p.last_seen else None,
            }
            for p in parts
        },
    }
