"""The console's emergencies: the list, the form that declares one (roles allowed, for
their own units), one progress page per emergency that updates itself, and cancelling
with a confirmation."""

from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from channels import registry
from coso.access import DECLARE, READ, SKIP_OPT_OUTS, Access, Forbidden, refusal
from coso.clock import Clock, as_utc, zone
from coso.config import Settings
from coso.errors import CosoError, InputError
from coso.units import unit_names, unit_tree
from dispatcher.emergency import (
    EmergencyRequest,
    cancel,
    current_audio,
    declare,
    emergency_log,
    find,
    list_emergencies,
    progress,
)
from dispatcher.emergency.progress import covered
from dispatcher.web.console import Pages
from schedules.emergencies import shown_state

MAX_AUDIO = 50 * 1024 * 1024
UPLOAD_LIMITS = {"/emergencies/new": MAX_AUDIO + 1024 * 1024}
# The form's box, as a refusal names it.
SKIP_WORDS = "“Gửi cả số đã từ chối nhận tin”"
LOCAL_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def read_until(text: str, tz: str) -> datetime | None:
    """The form's end (a datetime-local field, in the console's zone), or None."""
    text = text.strip()
    if not text:
        return None
    if not LOCAL_INPUT.match(text):
        raise InputError("until", text, "cần ngày giờ như 07/12/2026 18:00")
    return as_utc(datetime.fromisoformat(text).replace(tzinfo=zone(tz)))


def check_reach(engine: Engine, access: Access, units: list[str]) -> list[str]:
    """The units, current codes, each one the user may declare for (403 otherwise)."""
    access.require(DECLARE)
    tree = unit_tree(engine)
    found = []
    for code in (u.strip() for u in units if u.strip()):
        try:
            current = tree.current_for(code)
        except InputError as exc:
            raise InputError("units", code, "không phải mã đơn vị hành chính nào") from exc
        access.require_unit(DECLARE, current)
        found.append(current)
    return found


def may_see(engine: Engine, access: Access, row: Any) -> bool:
    """Anyone who reads the units it reaches (a district's emergency: its communes too)."""
    if not access.can(READ):
        return False
    return access.units is None or bool(covered(unit_tree(engine), row) & access.units)


def emergency_router(
    engine: Engine, settings: Settings, page: Pages, signed_in: Any, clock: Clock
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    tz = settings.timer.default_zone

    def titles() -> dict[str, str]:
        return {n: registry.plugins()[n].title for n in registry.configured(settings)}

    def own(ref: str, access: Access) -> Any:
        try:
            row = find(engine, ref)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from exc
        if not may_see(engine, access, row):
            raise Forbidden(f"{access.login} không phụ trách đơn vị nào của tin {row.reference}")
        return row

    def form(
        request: Request,
        access: Access,
        errors: list[str],
        values: dict[str, Any],
        status: int | None = None,
    ) -> HTMLResponse:
        mine = sorted(access.units or []) if access.units is not None else []
        names = unit_names(engine, mine)
        communes = [(c, names.get(c, c)) for c in mine if len(c) == 5][:200]
        return page(
            request,
            "emergency_new.html",
            {
                "errors": errors,
                "values": values,
                "channels": titles(),
                "communes": communes,
                "may_skip": access.can(SKIP_OPT_OUTS),
                "zone": tz,
            },
            status=status or (400 if errors else 200),
        )

    @router.get("/emergencies", response_class=HTMLResponse)
    def emergencies(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:
        access.require(READ)
        rows = list_emergencies(engine, access.units)
        now = clock.now()
        return page(
            request,
            "emergencies.html",
            {
                "rows": [(r, shown_state(r.state, r.until, now)) for r in rows],
                "may_declare": access.can(DECLARE),
                "zone": tz,
            },
        )

    @router.get("/emergencies/new", response_class=HTMLResponse)
    def new_form(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:
        access.require(DECLARE)
        return form(request, access, [], {"cancel_sms": True})

    @router.post("/emergencies/new", response_model=None)
    async def new(request: Request, access: Access = Depends(signed_in)) -> Response:
        access.require(DECLARE)
        data = await request.form()
        values = {
            k: data.get(k, "")
            for k in ("title", "text", "units", "until", "drill", "skip_opt_outs", "cancel_sms")
        }
        chosen = [str(c) for c in data.getlist("channels")]
        values["channels"] = chosen
        unit_list = [str(u) for u in data.getlist("unit")] + str(values["units"]).split()
        upload = data.get("audio")
        skip = bool(values["skip_opt_outs"])
        if skip and not access.can(SKIP_OPT_OUTS):
            # Only a form made by hand asks: the box is shown to those who may tick it.
            why = refusal(access.login, access.user.roles, SKIP_OPT_OUTS, SKIP_WORDS)
            refused = InputError("skip_opt_outs", values["skip_opt_outs"], why)
            return form(request, access, [str(refused)], {**values, "skip_opt_outs": ""}, 403)
        with tempfile.TemporaryDirectory() as folder:
            try:
                units = check_reach(engine, access, unit_list) or unit_list
                audio = None
                if isinstance(upload, UploadFile) and upload.filename:
                    audio = Path(folder) / Path(upload.filename).name
                    audio.write_bytes(await upload.read(MAX_AUDIO + 1))
                request_ = EmergencyRequest(
                    text=str(values["text"]),
                    units=units,
                    channels=chosen or None,
                    audio=audio,
                    until=read_until(str(values["until"]), tz),
                    drill=bool(values["drill"]),
                    title=str(values["title"]) or None,
                    source=f"console:{access.login}",
                    skip_opt_outs=skip,
                    cancel_sms=bool(values["cancel_sms"]),
                )
                ref = declare(engine, settings, request_, clock.now(), access.login)
            except Forbidden:
                raise
            except CosoError as exc:
                return form(request, access, [str(exc)], values)
        return RedirectResponse(f"/emergencies/{ref}", status_code=303)

    @router.get("/emergencies/{ref:path}/progress", response_class=HTMLResponse)
    def progress_part(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        row = own(ref, access)
        return page(request, "emergency_progress.html", _context(row))

    @router.get("/emergencies/{ref:path}/cancel", response_class=HTMLResponse)
    def cancel_form(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        row = own(ref, access)
        check_reach(engine, access, list(row.units))
        return page(request, "emergency_cancel.html", {"e": row, "errors": []})

    @router.post("/emergencies/{ref:path}/cancel", response_model=None)
    def cancel_it(
        request: Request,
        ref: str,
        note: str = Form(""),
        confirm: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        row = own(ref, access)
        check_reach(engine, access, list(row.units))
        try:
            if confirm != "yes":
                raise InputError("confirm", confirm, "hãy xác nhận huỷ")
            cancel(engine, settings, row.reference, now=clock.now(), actor=access.login, note=note)
        except CosoError as exc:
            return page(
                request, "emergency_cancel.html", {"e": row, "errors": [str(exc)]}, status=400
            )
        return RedirectResponse(f"/emergencies/{row.reference}", status_code=303)

    @router.get("/emergencies/{ref:path}", response_class=HTMLResponse)
    def one(request: Request, ref: str, access: Access = Depends(signed_in)) -> HTMLResponse:
        row = own(ref, access)
        context = _context(row)
        context["log"] = [
            e
            for e in emergency_log(engine, row.reference, 200)
            if access.reaches(e.unit_code) or e.unit_code is None
        ][:100]
        context["audio"] = current_audio(engine, row)
        context["may_cancel"] = access.can(DECLARE) and all(access.reaches(u) for u in row.units)
        return page(request, "emergency.html", context)

    def _context(row: Any) -> dict[str, Any]:
        now = clock.now()
        found = progress(engine, row.reference, now)
        return {
            "e": row,
            "p": found,
            "totals": found.totals(),
            "state": found.state,
            "zone": tz,
        }

    return router
