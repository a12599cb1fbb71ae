"""The console's pages: plans and their activity log. Every route of the console is on this
one router, so that who may see what is decided in one place: the login and the roles
scoped by administrative unit attach to it as its dependencies."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from coso.errors import InputError
from coso.units import unit_names
from dispatcher.queries import LogFilter, activity, delivery_counts, find_plan, list_plans

MAX_ID = 2**63 - 1  # the largest id a database integer column holds


def console_router(engine: Engine, templates: Jinja2Templates) -> APIRouter:
    router = APIRouter(include_in_schema=False)  # pages, not the JSON API

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "index.html", {"plans": list_plans(engine)})

    @router.get("/plans/{ref:path}", response_class=HTMLResponse)
    def plan_page(request: Request, ref: str) -> HTMLResponse:
        if "\x00" in ref or (ref.isdigit() and not (ref.isascii() and int(ref) <= MAX_ID)):
            # No plan number holds a NUL (PostgreSQL text cannot), and no id is digits like
            # "99999999999999999999" or "²" (the lookup would overflow the integer column).
            raise HTTPException(404, f"plan = {ref!r}: no plan with this number or id")
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

    return router
