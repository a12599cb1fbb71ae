"""A commune's "Hôm nay": the day's programme across channels, what played, failed or
waits, and the tasks a person confirms (a station's items) with one tap each: "Đã phát"
or "Không phát được". Notes on any delivery of the commune."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from channels import registry
from channels.endpoints import Endpoint
from channels.host import ChannelHost
from coso.access import CONFIRM, READ, Access
from coso.clock import as_utc, zone
from coso.config import Settings
from coso.errors import CosoError, InputError
from coso.units import unit_names, unit_tree
from dispatcher.clashes import day_clashes
from dispatcher.models import Delivery
from dispatcher.web.console import Pages, privacy
from schedules.models import Plan
from schedules.session_store import programmes

D = Delivery.__table__
E = Endpoint.__table__
P = Plan.__table__
MOST_SHOWN = 300
MOST_SESSIONS = 100
MAX_NOTE = 500


@dataclass(frozen=True)
class DayEntry:
    """One delivery of the day in the commune, on any channel."""

    delivery_id: int
    channel: str
    endpoint: str
    plan_number: str
    scheduled_for: datetime
    state: str
    error: str | None


def parse_day(text: str | None, tz: str, now: datetime) -> date:
    if not text:
        return now.astimezone(zone(tz)).date()
    from dispatcher.web.planning import parse_form_date

    return parse_form_date("day", text)


def parse_played_at(text: str, day_of: datetime, tz: str) -> datetime | None:
    """'HH:MM' on the slot's local day (or 'dd/mm/yyyy HH:MM'); empty: now."""
    text = text.strip()
    if not text:
        return None
    local_day = day_of.astimezone(zone(tz)).date()
    for form in ("%H:%M", "%H:%M:%S"):
        try:
            t = datetime.strptime(text, form).time()
        except ValueError:
            continue
        return datetime.combine(local_day, t, zone(tz))
    try:
        return datetime.strptime(text, "%d/%m/%Y %H:%M").replace(tzinfo=zone(tz))
    except ValueError:
        raise InputError("played_at", text, "giờ phát phải là HH:MM") from None


def day_entries(engine: Engine, units: set[str], day: date, tz: str) -> list[DayEntry]:
    lo = datetime.combine(day, time(), zone(tz))
    hi = lo + timedelta(days=1)
    with engine.connect() as conn:
        rows = conn.execute(
            select(D, E.c.name, E.c.address, P.c.number)
            .join(E, E.c.id == D.c.endpoint_id)
            .join(P, P.c.id == D.c.plan_id)
            .where(
                D.c.unit_code.in_(sorted(units)),
                D.c.scheduled_for >= lo,
                D.c.scheduled_for < hi,
            )
            .order_by(D.c.scheduled_for, D.c.channel, D.c.id)
            .limit(MOST_SHOWN)
        ).all()
    return [
        DayEntry(
            r.id,
            r.channel,
            r.name or r.address,
            r.number,
            as_utc(r.scheduled_for),
            r.state,
            r.last_error,
        )
        for r in rows
    ]


def today_router(
    engine: Engine, settings: Settings, page: Pages, signed_in: Any, host: ChannelHost
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    tz = settings.timer.default_zone

    def day_view(access: Access, code: str, day_text: str | None) -> dict[str, Any]:
        access.require_unit(READ, code)
        try:
            units = unit_tree(engine).below(code)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from exc
        day = parse_day(day_text, tz, host.clock.now())
        tasks = []
        for plugin in registry.plugins().values():
            people = plugin.confirmed_by_people
            if people is not None:
                tasks += [(plugin.name, t) for t in people.tasks(host, code, day)]
        clashes = day_clashes(host, units, day, tz)
        # Each broadcast session of the day, its items in playing order, with the time left.
        sessions = programmes(engine, settings, units, day, day, tz)[:MOST_SESSIONS]
        # Each channel lists its tasks in the order they go out (the running order within a
        # slot); the channels' lists are merged by time.
        tasks.sort(key=lambda pair: pair[1].scheduled_for)
        confirmed_channels = {name for name, _ in tasks}
        entries = [
            e for e in day_entries(engine, units, day, tz) if e.channel not in confirmed_channels
        ]
        return {
            "code": code,
            "name": unit_names(engine, [code]).get(code, code),
            "day": day,
            "tasks": tasks,
            "entries": entries,
            "zone": tz,
            "may_confirm": access.can(CONFIRM),
            "clashes": clashes,
            "sessions": sessions,
            "unit_names": unit_names(engine, {c.unit_code for c in clashes}),
            "reasons": _reasons(),
            "previous": day - timedelta(days=1),
            "next": day + timedelta(days=1),
        }

    @router.get("/units/{code}/today", response_class=HTMLResponse)
    def today(
        request: Request, code: str, day: str | None = None, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        try:
            context = day_view(access, code, day)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
        message = request.query_params.get("ok")
        return page(request, "today.html", context | {"message": message, "error": None})

    @router.get("/units/{code}/today.json")
    def today_json(
        code: str, day: str | None = None, access: Access = Depends(signed_in)
    ) -> JSONResponse:
        try:
            view = day_view(access, code, day)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
        hide = privacy(access)
        return JSONResponse(
            {
                "unit": code,
                "day": view["day"].isoformat(),
                "tasks": [
                    {
                        "channel": channel,
                        "delivery_id": t.delivery_id,
                        "title": t.title,
                        "scheduled_for": t.scheduled_for.isoformat(),
                        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                        "state": t.state,
                        "status": t.status,
                        "can_confirm": t.can_confirm,
                    }
                    for channel, t in view["tasks"]
                ],
                "sessions": [
                    {
                        "unit": p.place.code,
                        "name": p.session.name,
                        "starts_at": p.session.at.isoformat(),
                        "minutes": p.session.minutes,
                        "seconds_left": p.left,
                        "items": [
                            {"title": b.title, "seconds": b.seconds, "priority": b.priority}
                            for b in p.items
                        ],
                    }
                    for p in view["sessions"]
                ],
                "clashes": [
                    {
                        "unit": c.unit_code,
                        "slot": c.at.isoformat(),
                        "channel": c.channel,
                        "schedules": [
                            {"schedule_id": i.schedule_id, "title": i.title} for i in c.items
                        ],
                    }
                    for c in view["clashes"]
                ],
                "deliveries": [
                    {
                        "delivery_id": e.delivery_id,
                        "channel": e.channel,
                        "endpoint": hide(e.endpoint),
                        "plan": e.plan_number,
                        "scheduled_for": e.scheduled_for.isoformat(),
                        "state": e.state,
                        "error": hide(e.error),
                    }
                    for e in view["entries"]
                ],
            }
        )

    def delivery_in_reach(access: Access, delivery_id: int) -> Any:
        row = host.delivery(delivery_id)
        if row is None:
            raise HTTPException(404, f"delivery = {delivery_id}: không có lần gửi này")
        access.require_unit(CONFIRM, row.unit_code or "")
        return row

    def return_to(request: Request, row: Any) -> tuple[str, str]:
        """The commune page the operator came from (the unit in the form's address, else the
        delivery's) and the delivery's local day, dd/mm/yyyy."""
        unit = request.query_params.get("unit") or row.unit_code
        return unit, as_utc(row.scheduled_for).astimezone(zone(tz)).strftime("%d/%m/%Y")

    def back(request: Request, row: Any, message: str) -> Response:
        from urllib.parse import quote

        unit, day = return_to(request, row)
        return RedirectResponse(
            f"/units/{unit}/today?day={quote(day)}&ok={quote(message)}", status_code=303
        )

    def refused(request: Request, access: Access, row: Any, error: str) -> HTMLResponse:
        unit, day = return_to(request, row)
        context = day_view(access, unit, day)
        return page(request, "today.html", context | {"message": None, "error": error}, 400)

    def people_of(row: Any) -> Any:
        plugin = registry.plugins().get(row.channel)
        people = plugin.confirmed_by_people if plugin else None
        if people is None:
            raise InputError(
                "delivery", row.id, "lần gửi này do thiết bị tự báo, không cần người xác nhận"
            )
        return people

    @router.post("/deliveries/{delivery_id}/confirm", response_model=None)
    def confirm(
        request: Request,
        delivery_id: int,
        played_at: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        row = delivery_in_reach(access, delivery_id)
        try:
            at = parse_played_at(played_at, as_utc(row.scheduled_for), tz)
            people_of(row).confirm(host, delivery_id, access.login, at)
        except CosoError as exc:
            return refused(request, access, row, str(exc))
        return back(request, row, "Đã ghi: đã phát")

    @router.post("/deliveries/{delivery_id}/not-played", response_model=None)
    def not_played(
        request: Request,
        delivery_id: int,
        reason: str = Form(""),
        note: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        row = delivery_in_reach(access, delivery_id)
        try:
            people_of(row).could_not_play(host, delivery_id, access.login, reason, note)
        except CosoError as exc:
            return refused(request, access, row, str(exc))
        return back(request, row, "Đã ghi: không phát được")

    @router.post("/deliveries/{delivery_id}/note", response_model=None)
    def note(
        request: Request,
        delivery_id: int,
        text: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        row = delivery_in_reach(access, delivery_id)
        text = text.strip()
        if not text or len(text) > MAX_NOTE:
            return refused(request, access, row, f"text: ghi chú cần từ 1 đến {MAX_NOTE} ký tự")
        host.note_delivery(delivery_id, host.clock.now(), "note", access.login, text)
        return back(request, row, "Đã ghi chú")

    return router


def _reasons() -> dict[str, str]:
    found: dict[str, str] = {}
    for plugin in registry.plugins().values():
        if plugin.confirmed_by_people is not None:
            found.update(plugin.confirmed_by_people.reasons)
    return found
