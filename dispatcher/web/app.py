"""The web app, assembled: the console (dispatcher/web/console.py), health, API docs, and
each set-up channel's routes (the bulletin, webhooks, media). Public routes (the bulletin,
signed webhooks, players' media) check their callers themselves; the console's router is
where the login will attach."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import Engine

from channels import registry
from coso.clock import Clock, SystemClock, local_text
from coso.config import Settings
from dispatcher.host import EngineHost
from dispatcher.web.body_limit import BodyLimit
from dispatcher.web.console import console_router

TEMPLATE_DIR = Path(__file__).parent / "templates"


def page_templates() -> Jinja2Templates:
    """coso's page templates, then each channel's own (its pages extend base.html)."""
    templates = Jinja2Templates(directory=TEMPLATE_DIR)
    folders = [TEMPLATE_DIR] + [Path(p.templates) for p in registry.with_hook("templates")]
    templates.env.loader = ChoiceLoader([FileSystemLoader(f) for f in folders])
    templates.env.filters["local"] = local_text
    return templates


def create_app(engine: Engine, settings: Settings, clock: Clock | None = None) -> FastAPI:
    # The API docs (/api/docs, /redoc) with Swagger UI and ReDoc served by coso itself, not
    # from a CDN: they work without internet.
    app = FastAPIOffline(
        title="coso", docs_url="/api/docs", swagger_ui_parameters={"validatorUrl": None}
    )
    templates = page_templates()
    host = EngineHost(engine, settings, clock or SystemClock())
    for plugin, cfg in registry.each(settings, "routes"):
        if plugin.configured(cfg):  # an SMS account's webhooks only with an SMS account
            app.router.routes.extend(plugin.routes(host, templates))  # type: ignore[misc]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The console (plans, logs): one router, so access is decided in one place.
    app.include_router(console_router(engine, templates))

    # Every route's body is limited before it is read (dispatcher/web/body_limit.py).
    app.add_middleware(BodyLimit)
    return app
