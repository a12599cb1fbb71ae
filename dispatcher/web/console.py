"""The console's pages: login, plans and their activity log, downloads. Every route here
takes the signed-in user's `Access` and checks role and unit before it reads anything; the
forms (planning, confirmations, users) are in the modules beside this one."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from coso.access import APPROVE, CONFIRM, READ, SEE_PHONES, Access, Forbidden
from coso.clock import Clock
from coso.config import Settings
from coso.errors import InputError
from coso.units import unit_names
from coso.users import authenticate, set_password
from dispatcher.cap.desk import EmergencyDesk
from dispatcher.queries import LogFilter, activity, delivery_counts, find_plan
from dispatcher.web.auth import (
    LoginThrottle,
    check_csrf,
    csrf_token,
    safe_next,
    sign_in,
    sign_out,
    signed_in_dependency,
)
from dispatcher.web.scope import mask_phones, may_see_plan, visible_plans, whole_plan

K = TypeVar("K")

MAX_ID = 2**63 - 1  # the largest id a database integer column holds


class Pages:
    """Renders a page with what every page shows: who is signed in, the form token."""

    def __init__(self, templates: Jinja2Templates) -> None:
        self.templates = templates

    def __call__(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        access = getattr(request.state, "access", None)
        base = {"access": access, "csrf": csrf_token(request), "private": privacy(access)}
        return self.templates.TemplateResponse(request, name, base | context, status_code=status)


def privacy(access: Access | None) -> Any:
    """The filter for addresses, actors and notes: phone numbers masked for roles that do
    not send SMS."""
    if access is not None and access.can(SEE_PHONES):
        return lambda text: text or ""
    return mask_phones


def plan_for(engine: Engine, access: Access, ref: str) -> Any:
    """The plan `ref` if the user may read it: 404 when there is none, 403 when not theirs."""
    if "\x00" in ref or (ref.isdigit() and not (ref.isascii() and int(ref) <= MAX_ID)):
        raise HTTPException(404, f"plan = {ref!r}: không có kế hoạch số hoặc mã này")
    try:
        plan = find_plan(engine, ref)
    except InputError as exc:
        raise HTTPException(404, str(exc)) from exc
    access.require(READ)
    if not may_see_plan(engine, access, plan):
        raise Forbidden(f"{access.login} không phụ trách đơn vị nào của kế hoạch {plan.number}")
    return plan


def plan_log(engine: Engine, access: Access, plan: Any, limit: int = 100) -> list[Any]:
    """The plan's log as this user may see it: every unit's, or their units' only."""
    rows = activity(engine, plan.id, LogFilter(limit=limit if whole_plan(access, plan) else 5000))
    if whole_plan(access, plan):
        return rows
    return [r for r in rows if access.reaches(r.unit_code)][:limit]


def tally(
    rows: Iterable[tuple[K, str | None, int]], counted: Callable[[K, str | None], bool]
) -> dict[K, int]:
    """Counts grouped by key and unit, summed per key over the rows `counted` lets in (the
    units a user reaches)."""
    found: dict[K, int] = {}
    for key, unit, n in rows:
        if counted(key, unit):
            found[key] = found.get(key, 0) + n
    return found


def plan_counts(engine: Engine, access: Access, plan: Any) -> dict[tuple[str, str], int]:
    if whole_plan(access, plan):
        return delivery_counts(engine, plan.id)
    from sqlalchemy import func, select

    from dispatcher.models import Delivery

    d = Delivery.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.channel, d.c.state, d.c.unit_code, func.count())
            .where(d.c.plan_id == plan.id)
            .group_by(d.c.channel, d.c.state, d.c.unit_code)
        ).all()
    return tally((((c, s), u, n) for c, s, u, n in rows), lambda _key, unit: access.reaches(unit))


def plan_page_context(engine: Engine, access: Access, plan: Any, clock: Clock) -> dict[str, Any]:
    """What the plan page shows this user: counts and log of the units they reach, targets
    and progress, content, schedules, and which forms they may use."""
    from content.approval import list_content
    from dispatcher.progress import target_progress
    from dispatcher.queries import plan_schedules
    from dispatcher.web.planning import may_edit

    log = plan_log(engine, access, plan)
    return {
        "plan": plan,
        "counts": sorted(plan_counts(engine, access, plan).items()),
        "log": log,
        "units": unit_names(engine, {e.unit_code for e in log if e.unit_code}),
        "progress": target_progress(engine, plan, clock.now()),
        "content": list_content(engine, plan.id),
        "schedules": plan_schedules(engine, plan.id),
        "may_edit": may_edit(engine, access, plan),
        "may_approve": access.can(APPROVE),
        "message": None,
        "error": None,
    }


def attention(engine: Engine, access: Access, plans: list[Any]) -> dict[int, int]:
    """plan id → deliveries that failed, expired, were missed or never confirmed, in the
    units the user reaches."""
    from sqlalchemy import func, select

    from channels.states import EXPIRED, FAILED, MISSED, UNKNOWN
    from dispatcher.models import Delivery

    d = Delivery.__table__
    bad = [FAILED, EXPIRED, MISSED, UNKNOWN, "unconfirmed"]
    ids = [p.id for p in plans]
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.plan_id, d.c.unit_code, func.count())
            .where(d.c.plan_id.in_(ids), d.c.state.in_(bad))
            .group_by(d.c.plan_id, d.c.unit_code)
        ).all()
    owned = {p.id for p in plans if whole_plan(access, p)}
    return tally(rows, lambda plan_id, unit: plan_id in owned or access.reaches(unit))


def console_router(
    engine: Engine,
    settings: Settings,
    templates: Jinja2Templates,
    clock: Clock,
    throttle: LoginThrottle,
    emergencies: EmergencyDesk | None = None,
) -> APIRouter:
    page = Pages(templates)
    signed_in = signed_in_dependency(engine)
    router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
    from dispatcher.web.planning import planning_router

    # First, before the plan page's catch-all path: /plans/new, /plans/<n>/resend …
    router.include_router(planning_router(engine, settings, page, signed_in, clock))
    from dispatcher.web.editing import editing_router

    router.include_router(editing_router(engine, settings, page, signed_in, clock))
    from dispatcher.web.report_pages import report_router

    router.include_router(report_router(engine, page, signed_in, clock))

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", {"next": safe_next(next), "error": None})

    @router.post("/login", response_model=None)
    def login(
        request: Request,
        login: str = Form(""),
        password: str = Form(""),
        next: str = Form("/"),
    ) -> Response:
        client = request.client.host if request.client else "?"
        keys = (f"login:{login.strip().lower()}", f"address:{client}")
        wait = throttle.wait_for(*keys)
        if wait > 0:
            message = f"Đăng nhập sai quá nhiều lần. Hãy thử lại sau {int(wait) + 1} giây."
            response = page(
                request, "login.html", {"next": safe_next(next), "error": message}, status=429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = authenticate(engine, login, password)
        if user is None or user.id is None:
            throttle.failed(*keys)
            message = "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khóa."
            return page(
                request, "login.html", {"next": safe_next(next), "error": message}, status=401
            )
        throttle.succeeded(keys[0])
        sign_in(request, user.id, user.session_epoch)
        target = "/account/password" if user.must_change_password else safe_next(next)
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    def logout(request: Request) -> RedirectResponse:
        sign_out(request)
        return RedirectResponse("/login", status_code=303)

    @router.get("/account/password", response_class=HTMLResponse)
    def password_form(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:
        return page(request, "password.html", {"error": None, "done": False})

    @router.post("/account/password", response_class=HTMLResponse)
    def change_password(
        request: Request,
        current: str = Form(""),
        new: str = Form(""),
        again: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> HTMLResponse:
        error = None
        if authenticate(engine, access.login, current) is None:
            error = "Mật khẩu hiện tại không đúng."
        elif new != again:
            error = "Hai lần nhập mật khẩu mới không khớp."
        else:
            try:
                user = set_password(engine, access.login, new, clock.now(), must_change=False)
            except InputError as exc:
                error = exc.reason
            else:
                assert user.id is not None
                sign_in(request, user.id, user.session_epoch)
        status = 400 if error else 200
        return page(request, "password.html", {"error": error, "done": not error}, status=status)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:
        """What each person sees first: an operator, their communes' day; everyone, their
        plans with what needs acting on."""
        plans = visible_plans(engine, access)
        communes: list[tuple[str, str]] = []
        if access.can(CONFIRM) and access.units is not None:
            names = unit_names(engine, access.user.unit_codes)
            communes = [(c, names.get(c, c)) for c in access.user.unit_codes]
        from dispatcher.progress import target_progress

        now = clock.now()
        progress = {p.id: target_progress(engine, p, now) for p in plans[:50]}
        return page(
            request,
            "index.html",
            {
                "plans": plans,
                "communes": communes,
                "attention": attention(engine, access, plans),
                "progress": progress,
            },
        )

    @router.get("/plans/{ref:path}.json")
    def plan_json(ref: str, access: Access = Depends(signed_in)) -> JSONResponse:
        plan = plan_for(engine, access, ref)
        hide = privacy(access)
        return JSONResponse(
            {
                "number": plan.number,
                "title": plan.title,
                "counts": [
                    {"channel": c, "state": s, "count": n}
                    for (c, s), n in sorted(plan_counts(engine, access, plan).items())
                ],
                "log": [
                    {
                        "at": e.at.isoformat(),
                        "event": e.event,
                        "state": e.state,
                        "channel": e.channel,
                        "unit": e.unit_code,
                        "address": hide(e.address),
                        "actor": hide(e.actor),
                        "detail": hide(e.detail),
                    }
                    for e in plan_log(engine, access, plan)
                ],
            }
        )

    @router.get("/plans/{ref:path}/log.csv")
    def plan_log_csv(ref: str, access: Access = Depends(signed_in)) -> Response:
        plan = plan_for(engine, access, ref)
        hide = privacy(access)
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(["at", "event", "state", "channel", "unit", "address", "actor", "detail"])
        for e in plan_log(engine, access, plan, limit=100_000):
            out.writerow(
                [
                    e.at.isoformat(),
                    e.event,
                    e.state or "",
                    e.channel,
                    e.unit_code or "",
                    hide(e.address),
                    hide(e.actor),
                    hide(e.detail),
                ]
            )
        name = plan.number.replace("/", "-")
        return Response(
            "\ufeff" + buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-nhat-ky.csv"'},
        )

    @router.get("/plans/{ref:path}", response_class=HTMLResponse)
    def plan_page(request: Request, ref: str, access: Access = Depends(signed_in)) -> HTMLResponse:
        plan = plan_for(engine, access, ref)
        return page(request, "plan.html", plan_page_context(engine, access, plan, clock))

    from dispatcher.host import EngineHost
    from dispatcher.web.devices import devices_router
    from dispatcher.web.listen import listen_router
    from dispatcher.web.ordering import ordering_router
    from dispatcher.web.sessions_pages import sessions_router
    from dispatcher.web.today import today_router
    from dispatcher.web.users_pages import users_router

    host = EngineHost(engine, settings, clock)
    router.include_router(today_router(engine, settings, page, signed_in, host))
    router.include_router(ordering_router(settings, signed_in, host))
    router.include_router(listen_router(settings, signed_in))
    router.include_router(sessions_router(engine, settings, page, signed_in, clock))

    router.include_router(devices_router(engine, settings, page, signed_in))
    router.include_router(users_router(engine, page, signed_in, clock))
    from dispatcher.web.emergency_pages import emergency_router

    router.include_router(emergency_router(engine, settings, page, signed_in, clock))
    from dispatcher.cap.desk import Emergencies
    from dispatcher.cap.routes import cap_console_router

    desk = emergencies if emergencies is not None else Emergencies(engine, settings)
    router.include_router(cap_console_router(engine, settings, page, signed_in, clock, desk))
    return router
