""" "Buổi phát" in the console: the sessions each unit in reach has and where each comes from
(its own, a group's, its kind's, the settings' defaults), each session's programme for the
coming days with the time left, and the forms that add or remove a session and cancel a day
or add a session on one (schedules.session_edits does the checks and the moves).

Who may change what: a unit's sessions, whoever confirms or edits for that unit (its
commune operator, an editor who reaches it); a group's, an editor who reaches every unit of
the group; a kind's, or a day for everywhere, an administrator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from coso.access import CONFIRM, EDIT, READ, Access, Forbidden
from coso.clock import Clock, in_zone
from coso.config import Settings
from coso.errors import CosoError, InputError, InputErrors
from coso.units import unit_names, unit_tree
from dispatcher.web.console import Pages
from schedules.session_edits import (
    KINDS,
    add_change,
    add_session,
    change_text,
    group_names,
    origin_text,
    read_change,
    read_scope,
    read_session,
    remove_change,
    remove_session,
    scope_text,
    stored_changes_by_id,
    stored_sessions,
    unit_kinds,
)
from schedules.session_store import all_defs, config_defs, programmes, stored_groups, unit_places
from schedules.sessions import GROUP, KIND, UNIT, SessionDef, sessions_for

MOST_UNITS = 200  # communes listed at once (a province has fewer since 2025)
DAYS = (1, 7, 14)


@dataclass(frozen=True)
class UnitSessions:
    code: str
    name: str
    sessions: list[SessionDef]


def may_change(engine: Engine, access: Access, where: str) -> str | None:
    """Why `access` may not change the sessions of `where`, or None."""
    level, _, value = where.partition(":")
    if level == UNIT:
        if not (access.can(EDIT) or access.can(CONFIRM)):
            return f"vai trò của {access.login} không cho phép đổi buổi phát"
        if not access.reaches(value):
            return f"{access.login} không phụ trách đơn vị {value}"
        return None
    if level == GROUP:
        if not access.can(EDIT):
            return f"buổi phát của một nhóm do biên tập viên đổi, {access.login} thì không"
        if access.units is None:
            return None
        group = next((g for g in stored_groups(engine) if g.name == value), None)
        covered = set(group.member_units) if group else set()
        tree = unit_tree(engine)
        for code in group.unit_codes if group else ():
            covered |= tree.below(code)
        if not covered <= access.units:
            return f"{access.login} không phụ trách mọi đơn vị của nhóm {value}"
        return None
    if access.units is None and access.can(EDIT):
        return None
    return f"buổi phát của {scope_text(where)} do quản trị viên đổi"


def sessions_router(
    engine: Engine, settings: Settings, page: Pages, signed_in: Any, clock: Clock
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    tz = settings.timer.default_zone

    def today() -> date:
        return in_zone(clock.now(), tz).date()

    def require_change(access: Access, where: str) -> None:
        why = may_change(engine, access, where)
        if why:
            raise Forbidden(why)

    def chosen_unit(access: Access, unit: str | None) -> str:
        """The unit whose sessions the page shows: the one asked for (in reach), else the
        user's first."""
        if unit is None:
            return access.user.unit_codes[0] if access.user.unit_codes else ""
        code = unit.strip()
        if code:
            access.require_unit(READ, code)
        return code

    def context(
        access: Access, code: str, first: date, days: int, values: dict[str, str], errors: Any
    ) -> dict[str, Any]:
        defs = all_defs(engine, settings)
        units: list[UnitSessions] = []
        shown: list[Any] = []
        name = ""
        cut = False
        if code:
            tree = unit_tree(engine)
            try:
                below = tree.below(code)
            except InputError as exc:
                raise HTTPException(404, str(exc)) from exc
            places = unit_places(engine, below, tree=tree)
            name = places[code].name if code in places else code
            communes = sorted(
                (p for p in places.values() if p.kind in KINDS and access.reaches(p.code)),
                key=lambda p: (p.code != code, p.name),
            )
            cut = len(communes) > MOST_UNITS
            units = [
                UnitSessions(p.code, p.name, sessions_for(p, defs)) for p in communes[:MOST_UNITS]
            ]
            if len(units) == 1:
                last = first + timedelta(days=days - 1)
                shown = programmes(engine, settings, [units[0].code], first, last, tz)
        stored_changes = [(i, c) for i, c in stored_changes_by_id(engine) if c.day >= today()]
        stored = [
            (d, plan_id)
            for _, d, plan_id in stored_sessions(engine)
            if d.level != UNIT or access.reaches(d.scope.partition(":")[2])
        ]
        names = {u.code: u.name for u in units}
        names |= unit_names(
            engine,
            {
                where.partition(":")[2]
                for where in [d.scope for d, _ in stored] + [c.scope for _, c in stored_changes]
                if where.startswith(UNIT + ":")
            },
        )
        coming = [
            (change_id, c, change_text(c, names), may_change(engine, access, c.scope) is None)
            for change_id, c in stored_changes
            if _seen(access, c.scope)
        ]
        return {
            "code": code,
            "name": name,
            "units": units,
            "cut": cut,
            "programmes": shown,
            "first": first,
            "days": days,
            "choices": DAYS,
            "stored": stored,
            "defaults": config_defs(settings),
            "coming": coming,
            "origin": origin_text,
            "scope_text": lambda where: scope_text(where, names),
            "may": lambda where: may_change(engine, access, where) is None,
            "may_group": access.can(EDIT),
            "may_kind": access.units is None and access.can(EDIT),
            "may_any": access.can(EDIT) or access.can(CONFIRM),
            "groups": group_names(engine),
            "kinds": KINDS,
            "zone": tz,
            "values": values,
            "errors": errors,
            "message": None,
        }

    def shown_page(
        request: Request,
        access: Access,
        code: str,
        *,
        first: date | None = None,
        days: int = 7,
        values: dict[str, str] | None = None,
        errors: dict[str, list[str]] | None = None,
        message: str | None = None,
    ) -> HTMLResponse:
        found = context(access, code, first or today(), days, values or {}, errors or {})
        found["message"] = message
        return page(request, "sessions.html", found, status=400 if errors else 200)

    def back(code: str, message: str) -> RedirectResponse:
        query = urlencode({"unit": code, "ok": message}, quote_via=quote)
        return RedirectResponse(f"/sessions?{query}", status_code=303)

    @router.get("/sessions", response_class=HTMLResponse)
    def sessions_page(
        request: Request,
        unit: str | None = None,
        start: str | None = None,
        days: int = 7,
        access: Access = Depends(signed_in),
    ) -> HTMLResponse:
        access.require(READ)
        code = chosen_unit(access, unit)
        first = today()
        if start:
            from coso.dates import read_date

            try:
                first = read_date("start", start)
            except InputError as exc:
                raise HTTPException(400, str(exc)) from exc
        days = days if days in DAYS else 7
        message = request.query_params.get("ok")
        return shown_page(request, access, code, first=first, days=days, message=message)

    def scope_of(values: dict[str, str], *, required: bool) -> str:
        tree = unit_tree(engine)
        code = values.get("unit", "").strip()
        kinds: dict[str, str] = {}
        if code:
            try:
                kinds = unit_kinds(engine, [tree.current_for(code)])
            except InputError:
                kinds = {}
        return read_scope(
            tree,
            kinds,
            group_names(engine),
            unit=code,
            group=values.get("group", ""),
            kind=values.get("kind", ""),
            required=required,
        )

    def refused(
        request: Request, access: Access, form: str, values: dict[str, str], exc: CosoError
    ) -> HTMLResponse:
        found = exc.errors if isinstance(exc, InputErrors) else [exc]
        code = values.get("back", "")
        if code and not access.reaches(code):
            code = ""
        return shown_page(
            request, access, code, values=values, errors={form: [str(e) for e in found]}
        )

    @router.post("/sessions/add", response_model=None)
    def session_add(
        request: Request,
        unit: str = Form(""),
        group: str = Form(""),
        kind: str = Form(""),
        name: str = Form(""),
        weekdays: str = Form(""),
        start: str = Form(""),
        length: str = Form(""),
        back_to: str = Form("", alias="back"),
        access: Access = Depends(signed_in),
    ) -> Response:
        values = {
            "form": "add",
            "unit": unit,
            "group": group,
            "kind": kind,
            "name": name,
            "weekdays": weekdays,
            "start": start,
            "length": length,
            "back": back_to,
        }
        try:
            where = scope_of(values, required=True)
            require_change(access, where)
            new = read_session(where, name, weekdays, start, length)
            done = add_session(engine, settings, new, clock.now())
        except Forbidden:
            raise
        except CosoError as exc:
            return refused(request, access, "add", values, exc)
        return back(back_to or _unit_of(where), "\n".join(done.lines()))

    @router.post("/sessions/remove", response_model=None)
    def session_remove(
        request: Request,
        where: str = Form(""),
        name: str = Form(""),
        back_to: str = Form("", alias="back"),
        access: Access = Depends(signed_in),
    ) -> Response:
        if where.partition(":")[0] not in (UNIT, GROUP, KIND):
            raise HTTPException(400, f"where = {where!r}: không phải nơi có buổi phát")
        require_change(access, where)
        try:
            done = remove_session(engine, settings, where, name, clock.now())
        except CosoError as exc:
            return refused(request, access, "remove", {"back": back_to}, exc)
        return back(back_to or _unit_of(where), "\n".join(done.lines()))

    @router.post("/sessions/days/add", response_model=None)
    def day_add(
        request: Request,
        day: str = Form(""),
        action: str = Form("cancel"),
        session: str = Form(""),
        start: str = Form(""),
        length: str = Form(""),
        unit: str = Form(""),
        group: str = Form(""),
        kind: str = Form(""),
        note: str = Form(""),
        back_to: str = Form("", alias="back"),
        access: Access = Depends(signed_in),
    ) -> Response:
        values = {
            "form": "day",
            "day": day,
            "action": action,
            "session": session,
            "day_start": start,
            "day_length": length,
            "day_unit": unit,
            "day_group": group,
            "day_kind": kind,
            "note": note,
            "back": back_to,
        }
        try:
            where = scope_of({"unit": unit, "group": group, "kind": kind}, required=False)
            require_change(access, where)
            change = read_change(where, day, action, session, start, length, note, today())
            done = add_change(engine, settings, change, clock.now())
        except Forbidden:
            raise
        except CosoError as exc:
            return refused(request, access, "day", values, exc)
        return back(back_to or _unit_of(where), "\n".join(done.lines()))

    @router.post("/sessions/days/{change_id}/remove", response_model=None)
    def day_remove(
        request: Request,
        change_id: int,
        back_to: str = Form("", alias="back"),
        access: Access = Depends(signed_in),
    ) -> Response:
        found = [c for i, c in stored_changes_by_id(engine) if i == change_id]
        if not found:
            raise HTTPException(404, f"exception = {change_id}: không có ngoại lệ này")
        require_change(access, found[0].scope)
        try:
            done = remove_change(engine, settings, change_id, clock.now())
        except CosoError as exc:
            return refused(request, access, "remove", {"back": back_to}, exc)
        return back(back_to or _unit_of(found[0].scope), "\n".join(done.lines()))

    return router


def _unit_of(where: str) -> str:
    level, _, value = where.partition(":")
    return value if level == UNIT else ""


def _seen(access: Access, where: str) -> bool:
    """A unit's exceptions are seen by those who reach it; the others by everyone."""
    level, _, value = where.partition(":")
    return level != UNIT or access.reaches(value)
