"""coso's own bulletin: /bulletin (a page per commune) and /bulletin.atom (its feed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, case, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from channels.web.channel import BulletinPost
from coso.units import unit_names

UNIT_MAX = 10  # a unit code is 2 or 5 digits; anything longer names nothing


def bulletin(
    engine: Engine, unit: str | None = None, limit: int = 50, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The newest posts, an emergency's first while it is pinned (each with `pinned`)."""
    table = BulletinPost.__table__
    now = now or datetime.now(UTC)
    pinned = case((table.c.pinned_until > now, 1), else_=0)
    query = (
        select(table, pinned.label("pinned"))
        .order_by(pinned.desc(), table.c.published_at.desc(), table.c.id.desc())
        .limit(limit)
    )
    if unit:
        query = query.where(table.c.unit_code == unit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    names = unit_names(engine, {r.unit_code for r in rows if r.unit_code})
    return [{**r._asdict(), "unit_name": names.get(r.unit_code, r.unit_code or "")} for r in rows]


def bulletin_routes(host: Any, templates: Any) -> list[Route]:
    engine, settings = host.engine, host.settings
    public = settings.server.public_url.rstrip("/")

    def unit_of(request: Request) -> str | None:
        unit = request.query_params.get("unit") or None
        if unit is not None and len(unit) > UNIT_MAX:
            raise ValueError(f"unit = {unit[:20]!r}…: longer than {UNIT_MAX} characters")
        return unit

    async def page(request: Request) -> Response:
        try:
            unit = unit_of(request)
        except ValueError as exc:
            return PlainTextResponse(str(exc), 422)
        posts = bulletin(engine, unit, now=host.clock.now())
        title = unit_names(engine, [unit]).get(unit, unit) if unit else None
        return templates.TemplateResponse(
            request,
            "bulletin.html",
            {
                "posts": posts,
                "unit": unit,
                "unit_title": title,
                "zone": settings.timer.default_zone,
            },
        )

    async def feed(request: Request) -> Response:
        try:
            unit = unit_of(request)
        except ValueError as exc:
            return PlainTextResponse(str(exc), 422)
        from feedgen.feed import FeedGenerator  # lxml: loaded when a feed is first asked for

        atom = FeedGenerator()
        atom.id(f"{public}/bulletin" + (f"?unit={unit}" if unit else ""))
        atom.title("Bản tin cơ sở" + (f" — {unit}" if unit else ""))
        atom.link(href=f"{public}/bulletin", rel="alternate")
        atom.language("vi")
        posts = bulletin(engine, unit, now=host.clock.now())
        # Feed readers sort by date: a pinned emergency is the newest entry while it lasts.
        newest = max((p["published_at"] for p in posts), default=None)
        for post in reversed(posts):
            entry = atom.add_entry()
            entry.id(f"{public}/bulletin/{post['id']}")
            entry.title(post["title"])
            entry.content(post["body_html"], type="html")
            entry.published(post["published_at"])
            entry.updated(newest if post["pinned"] else post["published_at"])
            entry.link(href=f"{public}/bulletin?unit={post['unit_code'] or ''}")
        if posts:
            atom.updated(newest)
        # The feed is UTF-8 (Vietnamese titles): say so, or browsers guess Latin-1.
        return Response(
            atom.atom_str(pretty=True), media_type="application/atom+xml; charset=utf-8"
        )

    return [Route("/bulletin", page), Route("/bulletin.atom", feed)]
