"""CAP over HTTP: `POST /api/cap/alerts` for agencies (a key per sender, no session), and
the console's page of alerts received, where waiting ones are approved or refused."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from coso.access import DECLARE, READ, Access
from coso.clock import Clock
from coso.config import Settings
from coso.errors import InputError
from coso.units import unit_names
from dispatcher.cap.desk import EmergencyDesk
from dispatcher.cap.intake import (
    HTTP,
    approve,
    receive,
    recent_alerts,
    refuse,
    reject,
    sender_for_token,
    waiting_alerts,
)
from dispatcher.cap.models import REFUSED

ALERTS_PATH = "/api/cap/alerts"
MAX_ID = 2**63 - 1  # the largest id a database integer column holds


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def cap_api_router(
    engine: Engine, settings: Settings, clock: Clock, desk: EmergencyDesk
) -> APIRouter:
    router = APIRouter()

    @router.post(ALERTS_PATH, tags=["cap"])
    async def post_alert(request: Request) -> JSONResponse:
        """One CAP 1.2 document as the body (application/cap+xml or application/xml), with
        `Authorization: Bearer <the sender's token>`. 200 with what became of it; 400 when
        it is refused (the field and value named), 401 without a valid key. Every document
        is logged."""
        data = await request.body()
        now = clock.now()
        found = sender_for_token(settings, bearer_token(request))
        client = request.client.host if request.client else "?"
        if found is None:
            reason = "thiếu khóa hoặc khóa không đúng (Authorization: Bearer …)"
            received = await run_in_threadpool(
                refuse, engine, data, HTTP, client, now, InputError("Authorization", "…", reason)
            )
            return JSONResponse(
                received.as_json() | {"detail": reason},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        # Off the event loop: declaring writes and fires (other requests go on meanwhile).
        received = await run_in_threadpool(
            receive, engine, settings, desk, data, HTTP, found.name, now, authenticated_as=found
        )
        status = 400 if received.outcome == REFUSED else 200
        body = received.as_json()
        if status == 400:
            body["detail"] = received.reason
        return JSONResponse(body, status_code=status)

    return router


def cap_console_router(
    engine: Engine,
    settings: Settings,
    page: object,
    signed_in: object,
    clock: Clock,
    desk: EmergencyDesk,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def show(request: Request, access: Access, message: str = "", error: str = "") -> HTMLResponse:
        waiting = [a for a in waiting_alerts(engine) if access.reaches_any(a.units or [None])]
        recent = [a for a in recent_alerts(engine) if access.reaches_any(a.units or [None])]
        names = unit_names(engine, {c for a in waiting + recent for c in a.units or []})
        context = {
            "waiting": waiting,
            "recent": recent,
            "units": names,
            "zone": settings.timer.default_zone,
            "message": message,
            "error": error,
        }
        return page(request, "cap.html", context, status=400 if error else 200)  # type: ignore[operator]

    @router.get("/cap", response_class=HTMLResponse)
    def alerts(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:  # type: ignore[arg-type]
        access.require(READ)
        return show(request, access)

    def decided(alert_id: int, access: Access) -> list[str]:
        if not 0 < alert_id <= MAX_ID:
            raise HTTPException(404, f"Không có cảnh báo số {alert_id}.")
        for row in waiting_alerts(engine):
            if row.id == alert_id:
                access.require(DECLARE, row.units or [None])
                return list(row.units or [])
        access.require(DECLARE)
        return []

    @router.post("/cap/{alert_id}/approve", response_model=None)
    def approve_alert(
        request: Request,
        alert_id: int,
        access: Access = Depends(signed_in),  # type: ignore[arg-type]
    ) -> Response:
        decided(alert_id, access)
        try:
            done = approve(engine, settings, desk, alert_id, clock.now(), access.login)
        except InputError as exc:
            return show(request, access, error=str(exc))
        return RedirectResponse(f"/cap?done={done.id}", status_code=303)

    @router.post("/cap/{alert_id}/reject", response_model=None)
    def reject_alert(
        request: Request,
        alert_id: int,
        note: str = Form(""),
        access: Access = Depends(signed_in),  # type: ignore[arg-type]
    ) -> Response:
        decided(alert_id, access)
        try:
            done = reject(engine, alert_id, clock.now(), access.login, note.strip())
        except InputError as exc:
            return show(request, access, error=str(exc))
        return RedirectResponse(f"/cap?done={done.id}", status_code=303)

    return router
