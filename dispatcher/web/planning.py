"""Planning in the browser: a new plan, an uploaded plan file, schedules on and off, failed
deliveries sent again, and what would go out where. Each form goes through the same checks
as the command line (a plan is created by importing it, so the rules are the plan file's)."""

from __future__ import annotations

import re
import tempfile
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from coso.access import EDIT, Access, Forbidden
from coso.clock import Clock, zone
from coso.config import Settings
from coso.dates import read_date
from coso.errors import CosoError, InputError, InputErrors
from coso.names import shown
from coso.units import Organisation, unit_tree
from dispatcher.queries import plan_schedules
from dispatcher.resend import resend_failed
from dispatcher.rotation_picks import turns
from dispatcher.web.console import Pages, plan_for
from dispatcher.web.scope import plan_units, whole_plan
from schedules.editing import set_enabled
from schedules.importer import import_plan
from schedules.planfile import PlanFile, PlanHeader, TargetEntry, read_plan_file
from schedules.preview import plan_programmes, preview

MAX_PLAN_FILE = 2 * 1024 * 1024
PREVIEW_DAYS = (1, 7, 31)


FORM = "biểu mẫu"  # the source of a plan file a form wrote
ENTRY = re.compile(r"^(content|schedules|targets)\[\d+\]\.")


def errors_of(exc: CosoError) -> list[str]:
    """Each error as a line; one from a form's plan file names the form's field alone
    (its line and entry in a file nobody saw would mean nothing)."""
    found = exc.errors if isinstance(exc, InputErrors) else [exc]
    lines = []
    for e in found:
        if isinstance(e, InputError) and e.source == FORM:
            lines.append(f"{ENTRY.sub('', e.field)} = {shown(e.value)!r}: {e.reason}")
        else:
            lines.append(str(e))
    return lines


def parse_form_date(field: str, text: str) -> date:
    """A date as typed (dd/mm/yyyy) or as a date input sends it (yyyy-mm-dd), in the years
    schedules may use."""
    return read_date(field, text)


def organisation_name(engine: Engine, access: Access) -> str | None:
    if access.organisation_id is None:
        return None
    with engine.connect() as conn:
        return conn.scalar(
            select(Organisation.__table__.c.name).where(
                Organisation.__table__.c.id == access.organisation_id
            )
        )


def check_reach(engine: Engine, access: Access, pf: PlanFile) -> None:
    """An editor writes plans for their own units only: every unit the file names (targets,
    endpoints, groups, schedules' targets) must be one they reach."""
    if access.units is None:
        return
    tree = unit_tree(engine)
    named = {u for t in pf.targets for u in t.units}
    named |= {e.unit for e in pf.endpoints if e.unit}
    named |= {u for g in pf.groups for u in g.units}
    named |= {u for s in pf.schedules for u in s.targets.units}
    outside = []
    for code in sorted(named):
        try:
            below = tree.below(code)
        except InputError:
            continue  # the import names it as unknown
        if not below <= access.units:
            outside.append(code)
    if outside:
        raise Forbidden(f"{access.login} không phụ trách các đơn vị {', '.join(outside)}")


def check_seen_after(access: Access, pf: PlanFile, target_units: str) -> None:
    """A plan is seen by those who reach a unit it touches or own its organisation: a new
    plan with no target unit, made by an editor of no organisation, would be seen by
    administrators alone (its maker would get 403 on it)."""
    if access.units is None or access.organisation_id is not None:
        return
    if not any(t.units for t in pf.targets):
        raise InputError(
            "target_units",
            target_units,
            "cần một chỉ tiêu (kênh, số lần) ở ít nhất một đơn vị bạn phụ trách: "
            "kế hoạch không chạm đơn vị nào thì chỉ quản trị viên thấy",
        )


def planning_router(
    engine: Engine, settings: Settings, page: Pages, signed_in: Any, clock: Clock
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def require_edit(access: Access, plan: Any) -> None:
        if not may_edit(engine, access, plan):
            raise Forbidden(f"{access.login} không được sửa kế hoạch {plan.number}")

    def new_form(request: Request, errors: list[str], values: dict[str, str]) -> HTMLResponse:
        from channels import registry

        channels = [(n, registry.plugins()[n].title) for n in registry.names()]
        return page(
            request,
            "plan_new.html",
            {"errors": errors, "values": values, "channels": channels},
            status=400 if errors else 200,
        )

    @router.get("/plans/new", response_class=HTMLResponse)
    def plan_new_form(request: Request, access: Access = Depends(signed_in)) -> HTMLResponse:
        access.require(EDIT)
        return new_form(request, [], {})

    @router.post("/plans/new", response_model=None)
    def plan_new(
        request: Request,
        number: str = Form(""),
        title: str = Form(""),
        issuer: str = Form(""),
        period_start: str = Form(""),
        period_end: str = Form(""),
        target_channel: str = Form(""),
        target_count: str = Form(""),
        target_per: str = Form("week"),
        target_units: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        access.require(EDIT)
        values = {
            "number": number,
            "title": title,
            "issuer": issuer,
            "period_start": period_start,
            "period_end": period_end,
            "target_channel": target_channel,
            "target_count": target_count,
            "target_per": target_per,
            "target_units": target_units,
        }
        try:
            targets = []
            if target_channel:
                count = int(target_count) if target_count.strip().isdigit() else None
                if count is None:
                    raise InputError("target_count", target_count, "cần một số nguyên dương")
                targets.append(
                    TargetEntry(
                        channel=target_channel,
                        count=count,
                        per=target_per,  # type: ignore[arg-type]
                        units=target_units.replace(",", " ").split(),
                    )
                )
            pf = PlanFile(
                plan=PlanHeader(
                    number=number.strip(),
                    title=title.strip(),
                    issuer=issuer.strip(),
                    organisation=organisation_name(engine, access),
                    period_start=parse_form_date("period_start", period_start),
                    period_end=parse_form_date("period_end", period_end),
                ),
                targets=targets,
            )
            check_reach(engine, access, pf)
            check_seen_after(access, pf, target_units)
            plan = import_plan(engine, settings, pf, clock.now(), source=FORM)
        except CosoError as exc:
            if isinstance(exc, Forbidden):
                raise
            return new_form(request, errors_of(exc), values)
        except ValueError as exc:  # pydantic: a field the form left empty or wrong
            return new_form(request, [str(exc)], values)
        return RedirectResponse(f"/plans/{plan.number}", status_code=303)

    @router.post("/plans/upload", response_model=None)
    async def plan_upload(
        request: Request, file: UploadFile, access: Access = Depends(signed_in)
    ) -> Response:
        access.require(EDIT)
        data = await file.read(MAX_PLAN_FILE + 1)
        if len(data) > MAX_PLAN_FILE:
            return new_form(request, [f"tệp kế hoạch lớn quá {MAX_PLAN_FILE // 1024} KiB"], {})
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(file.filename or "plan.toml").name
            path.write_bytes(data)
            try:
                pf, text = read_plan_file(path)
                check_reach(engine, access, pf)
                plan = import_plan(
                    engine, settings, pf, clock.now(), source=path.name, text=text, folder=None
                )
            except Forbidden:
                raise
            except CosoError as exc:
                return new_form(request, errors_of(exc), {})
        return RedirectResponse(f"/plans/{plan.number}", status_code=303)

    @router.post("/plans/{ref:path}/schedules/{schedule_id}/{action}", response_model=None)
    def schedule_switch(
        request: Request,
        ref: str,
        schedule_id: int,
        action: str,
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = plan_for(engine, access, ref)
        require_edit(access, plan)
        if action not in ("enable", "disable"):
            return Response(status_code=404)
        if schedule_id not in {s.id for s in plan_schedules(engine, plan.id)}:
            return Response(status_code=404)
        try:
            set_enabled(engine, schedule_id, action == "enable", clock.now())
        except CosoError as exc:
            return plan_message(request, plan, error=str(exc))
        return RedirectResponse(f"/plans/{plan.number}#lich", status_code=303)

    @router.post("/plans/{ref:path}/resend", response_model=None)
    def resend(request: Request, ref: str, access: Access = Depends(signed_in)) -> Response:
        plan = plan_for(engine, access, ref)
        require_edit(access, plan)
        units = None if whole_plan(access, plan) else access.units
        count = resend_failed(engine, plan.id, clock.now(), access.login, units)
        return plan_message(request, plan, message=f"Đã đưa {count} lượt gửi lỗi vào hàng gửi lại.")

    @router.get("/plans/{ref:path}/preview", response_class=HTMLResponse)
    def plan_preview(
        request: Request, ref: str, days: int = 7, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        plan = plan_for(engine, access, ref)
        days = days if days in PREVIEW_DAYS else 7
        local = clock.now().astimezone(zone(plan.zone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        rows = preview(engine, plan.id, start, days, partial(turns, engine))
        # The broadcast sessions its queued schedules are placed in, each with its programme.
        sessions = plan_programmes(engine, settings, plan.id, start, days, plan.zone)
        if access.units is not None:
            sessions = [s for s in sessions if access.reaches(s.place.code)]
        return page(
            request,
            "plan_preview.html",
            {
                "plan": plan,
                "rows": rows,
                "sessions": sessions,
                "days": days,
                "choices": PREVIEW_DAYS,
                "until": start + timedelta(days=days),
            },
        )

    def plan_message(
        request: Request, plan: Any, message: str | None = None, error: str | None = None
    ) -> HTMLResponse:
        # The plan page with a line on top saying what the form did.
        from dispatcher.web.console import plan_page_context

        context = plan_page_context(engine, request.state.access, plan, clock)
        return page(
            request,
            "plan.html",
            context | {"message": message, "error": error},
            status=400 if error else 200,
        )

    return router


def may_edit(engine: Engine, access: Access, plan: Any) -> bool:
    """An administrator; an editor of the plan's organisation; or an editor who reaches every
    unit the plan touches (a commune's editor does not change a province's plan)."""
    if not access.can(EDIT):
        return False
    if whole_plan(access, plan):
        return True
    return access.units is not None and plan_units(engine, plan.id) <= access.units
