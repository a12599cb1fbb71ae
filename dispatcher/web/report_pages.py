"""A plan's report in the console: a form (period, unit, lines by …), the figures, the
charts and the tables of the HTML export, and the same report as CSV, XLSX or DOCX.
A user who does not see the whole plan gets the report of their own unit only."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy import Engine

from coso.access import READ, Access, Forbidden
from coso.clock import Clock
from coso.errors import CosoError, InputError
from coso.units import unit_names, unit_tree
from dispatcher.report.build import DIMENSIONS, Report, build_report, parse_by
from dispatcher.report.csv_table import DIMENSION_LABELS, csv_text
from dispatcher.report.export_html import PIECES_STYLE, charts, notes_html, tables_html
from dispatcher.report.exports import MEDIA_TYPES, heading, render
from dispatcher.report.periods import QUARTERS, month_end, parse_period
from dispatcher.web.console import Pages, plan_for
from dispatcher.web.scope import plan_units, whole_plan

MOST_MONTHS = 36  # months offered in the form (a longer plan: a year, or from/until)
DOWNLOADS = ("csv", "xlsx", "docx")


def period_choices(start: date, end: date) -> list[tuple[str, str]]:
    """(value, label) of the plan's years, quarters and months, for the form."""
    years = list(range(start.year, end.year + 1))
    choices = [(str(y), f"năm {y}") for y in years]
    for y in years:
        for q in range(1, 5):
            first, last = date(y, 3 * q - 2, 1), month_end(date(y, 3 * q, 1))
            if last >= start and first <= end:
                choices.append((f"Q{q}/{y}", f"quý {QUARTERS[q - 1]}/{y}"))
    month, shown = date(start.year, start.month, 1), 0
    while month <= end and shown < MOST_MONTHS:
        choices.append((f"{month:%m/%Y}", f"tháng {month:%m/%Y}"))
        month, shown = month_end(month) + timedelta(days=1), shown + 1
    return choices


def own_unit(engine: Engine, access: Access, plan: Any) -> str:
    """The unit whose report a user who does not see the whole plan gets: the first of
    their units that the plan touches."""
    touched = plan_units(engine, plan.id)
    tree = unit_tree(engine)
    for code in access.user.unit_codes:
        try:
            below = tree.below(code) | {code}
        except CosoError:
            continue
        if below & touched:
            return code
    raise Forbidden(f"{access.login} không phụ trách đơn vị nào của kế hoạch {plan.number}")


def report_unit(engine: Engine, access: Access, plan: Any, unit: str | None) -> str | None:
    """The unit the report is cut to: as asked when the user reaches it, the whole plan
    (None) for those who see it all, else the user's own unit."""
    unit = (unit or "").strip() or None
    if whole_plan(access, plan):
        return unit
    if unit is None:
        return own_unit(engine, access, plan)
    if not access.reaches(unit):
        raise Forbidden(f"{access.login} không phụ trách đơn vị {unit}")
    return unit


def unit_choices(engine: Engine, access: Access, plan: Any) -> list[tuple[str, str]]:
    """(code, name) of the units the form offers: the plan's units the user reaches, and
    the user's own units."""
    codes = {c for c in plan_units(engine, plan.id) if access.reaches(c)}
    if access.units is not None:
        codes |= set(access.user.unit_codes)
    names = unit_names(engine, codes)
    return sorted(((c, names.get(c, c)) for c in codes), key=lambda pair: (len(pair[0]), pair[0]))


class Asked:
    """What the report form (and a download link) asks for, read once for every route."""

    def __init__(
        self,
        period: str | None = None,
        since: str | None = Query(None, alias="from"),
        until: str | None = None,
        unit: str | None = None,
        by: list[str] = Query([]),
        number: str = "",
        place: str = "",
    ) -> None:
        self.period, self.since, self.until = period, since, until
        self.unit, self.by, self.number, self.place = unit, by, number, place

    def form(self, chosen_unit: str | None) -> dict[str, Any]:
        """The form's fields as asked (the unit as the report is cut)."""
        return {
            "period": self.period or "",
            "from": self.since or "",
            "until": self.until or "",
            "unit": chosen_unit or "",
            "by": self.by or ["channel"],
            "number": self.number,
            "place": self.place,
        }


def report_router(engine: Engine, page: Pages, signed_in: Any, clock: Clock) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def make(access: Access, plan: Any, asked: Asked) -> Report:
        window = parse_period(
            (asked.period or "").strip() or None,
            (asked.since or "").strip() or None,
            (asked.until or "").strip() or None,
            plan.period_start,
            plan.period_end,
        )
        return build_report(
            engine,
            plan,
            window,
            unit=report_unit(engine, access, plan, asked.unit),
            by=parse_by(",".join(asked.by)),
            now=clock.now(),
        )

    @router.get("/plans/{ref:path}/report.{format}")
    def report_file(
        ref: str,
        format: str,
        asked: Asked = Depends(),
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = plan_for(engine, access, ref)
        access.require(READ)
        if format not in DOWNLOADS:
            raise HTTPException(404, f"format = {format!r}: tải về được csv, xlsx hoặc docx")
        try:
            report = make(access, plan, asked)
            data = (
                csv_text(report)
                if format == "csv"
                else render(report, format, number=asked.number, place=asked.place)
            )
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
        name = f"{plan.number.replace('/', '-')}-bao-cao-{report.period.start:%Y%m%d}"
        return Response(
            data,
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
        )

    @router.get("/plans/{ref:path}/report", response_class=HTMLResponse)
    def report_page(
        request: Request,
        ref: str,
        asked: Asked = Depends(),
        access: Access = Depends(signed_in),
    ) -> HTMLResponse:
        plan = plan_for(engine, access, ref)
        access.require(READ)
        chosen_unit = report_unit(engine, access, plan, asked.unit)
        context: dict[str, Any] = {
            "plan": plan,
            "periods": period_choices(plan.period_start, plan.period_end),
            "units": unit_choices(engine, access, plan),
            "dimensions": [(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
            "whole": whole_plan(access, plan),
            "asked": asked.form(chosen_unit),
            "query": request.url.query,
            "downloads": DOWNLOADS,
            "style": Markup(f"<style>{PIECES_STYLE}</style>"),
            "report": None,
            "error": None,
        }
        try:
            report = make(access, plan, asked)
        except InputError as exc:
            context["error"] = str(exc)
            return page(request, "report.html", context, status=400)
        context.update(
            report=report,
            heading=heading(report),
            charts=charts(report),
            tables=tables_html(report),
            notes=notes_html(report),
        )
        return page(request, "report.html", context)

    return router
