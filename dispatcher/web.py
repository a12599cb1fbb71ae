"""The web app: the public bulletin (/bulletin, /bulletin.atom) and a small console."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from feedgen.feed import FeedGenerator
from sqlalchemy import Engine

from content.media import media_dir, token_secret, token_valid
from coso.clock import Clock, SystemClock, local_text
from coso.config import Settings
from coso.errors import InputError
from coso.units import unit_names
from dispatcher.queries import LogFilter, activity, bulletin, delivery_counts, find_plan, list_plans
from dispatcher.sms_web import MOUNT, sms_webhooks

log = logging.getLogger(__name__)
MEDIA_NAME = re.compile(r"[0-9a-f]{64}\.mp3")
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters["local"] = local_text


def create_app(engine: Engine, settings: Settings, clock: Clock | None = None) -> FastAPI:
    # The API docs (/api/docs, /redoc) with Swagger UI and ReDoc served by coso itself, not
    # from a CDN: they work without internet.
    app = FastAPIOffline(
        title="coso", docs_url="/api/docs", swagger_ui_parameters={"validatorUrl": None}
    )
    public = settings.server.public_url.rstrip("/")
    app.mount(MOUNT, sms_webhooks(engine, settings, clock or SystemClock()))

    media = media_dir(settings.media)
    secret = token_secret(settings.media)

    @app.get("/media/{name}")
    def media_file(name: str, request: Request) -> FileResponse:
        """A prepared clip, for the player that shows its own token."""
        player = request.headers.get("X-Coso-Player", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not player or not token or not token_valid(secret, player, token):
            raise HTTPException(401, "send X-Coso-Player and Authorization: Bearer <its token>")
        if not MEDIA_NAME.fullmatch(name) or not (media / name).is_file():
            raise HTTPException(404, f"no media {name!r}")
        return FileResponse(media / name, media_type="audio/mpeg")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "index.html", {"plans": list_plans(engine)})

    @app.get("/plans/{ref:path}", response_class=HTMLResponse)
    def plan_page(request: Request, ref: str) -> HTMLResponse:
        try:
            plan = find_plan(engine, ref)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from exc
        log = activity(engine, plan.id, LogFilter(limit=100))
        return TEMPLATES.TemplateResponse(
            request,
            "plan.html",
            {
                "plan": plan,
                "counts": sorted(delivery_counts(engine, plan.id).items()),
                "log": log,
                "units": unit_names(engine, {e.unit_code for e in log if e.unit_code}),
            },
        )

    @app.get("/bulletin", response_class=HTMLResponse)
    def bulletin_page(
        request: Request, unit: Annotated[str | None, Query(max_length=10)] = None
    ) -> HTMLResponse:
        posts = bulletin(engine, unit)
        title = unit_names(engine, [unit]).get(unit, unit) if unit else None
        return TEMPLATES.TemplateResponse(
            request,
            "bulletin.html",
            {
                "posts": posts,
                "unit": unit,
                "unit_title": title,
                "zone": settings.timer.default_zone,
            },
        )

    @app.get("/bulletin.atom")
    def bulletin_feed(unit: Annotated[str | None, Query(max_length=10)] = None) -> Response:
        feed = FeedGenerator()
        feed.id(f"{public}/bulletin" + (f"?unit={unit}" if unit else ""))
        feed.title("Bản tin cơ sở" + (f" — {unit}" if unit else ""))
        feed.link(href=f"{public}/bulletin", rel="alternate")
        feed.language("vi")
        posts = bulletin(engine, unit)
        for post in reversed(posts):
            entry = feed.add_entry()
            entry.id(f"{public}/bulletin/{post['id']}")
            entry.title(post["title"])
            entry.content(post["body_html"], type="html")
            entry.published(post["published_at"])
            entry.updated(post["published_at"])
            entry.link(href=f"{public}/bulletin?unit={post['unit_code'] or ''}")
        if posts:
            feed.updated(posts[0]["published_at"])
        return Response(
            feed.atom_str(pretty=True),
            media_type="application/atom+xml; charset=utf-8",
        )

    return app
