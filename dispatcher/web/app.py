"""The web app: a small console, the JSON API, and each channel's routes (the bulletin,
webhooks, media), mounted in one place."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import Engine

from channels import registry
from coso.clock import Clock, SystemClock, local_text
from coso.config import Settings
from coso.errors import InputError
from coso.units import unit_names
from dispatcher.host import EngineHost
from dispatcher.queries import LogFilter, activity, delivery_counts, find_plan, list_plans

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

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "index.html", {"plans": list_plans(engine)})

    @app.get("/plans/{ref:path}", response_class=HTMLResponse)
    def plan_page(request: Request, ref: str) -> HTMLResponse:
        try:
            plan = find_plan(engine, ref)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from exc
        log = activity(engine, plan.id, LogFilter(limit=100))
        return templates.TemplateResponse(
            request,
            "plan.html",
            {
                "plan": plan,
                "counts": sorted(delivery_counts(engine, plan.id).items()),
                "log": log,
                "units": unit_names(engine, {e.unit_code for e in log if e.unit_code}),
            },
        )

    return app
