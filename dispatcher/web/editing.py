"""Editing a plan in the browser: content (text, article, audio with the same checks as
`coso content audio`, speech as `coso content speak`), versions and their approval,
schedules from a form that writes the RRULE, and plan files that change an existing plan
(shown, then applied on confirmation).

A form that adds to a plan writes the stored plan back as a plan file with the addition
and goes through `check_update` / `apply_update`: the rules are those of a plan file."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from channels import registry
from content.approval import set_state
from content.versions import approve, attach_draft_audio, edit_content, list_versions
from coso.access import APPROVE, EDIT, Access, Forbidden
from coso.clock import Clock
from coso.config import Settings
from coso.errors import CosoError, InputError, InputErrors
from dispatcher.web.console import Pages, plan_for
from dispatcher.web.planning import FORM, errors_of, may_edit
from schedules.plan_export import plan_document, plan_text, stored_plan
from schedules.plan_import.update import apply_update, check_update
from schedules.timing_form import KINDS, WEEKDAY_CODES, TimingForm, form_problems, stored_timing

MAX_AUDIO = 100 * 1024 * 1024  # as a commune's longest programme, with room
# Forms that carry audio post under here: the body limit lets them be this large.
UPLOADS = "/uploads"
UPLOAD_LIMITS = {
    UPLOADS + "/": MAX_AUDIO + 1024 * 1024,
    "/plans/upload": 3 * 1024 * 1024,
    "/plans/update": 3 * 1024 * 1024,
}
AUDIO_SUFFIXES = (".mp3", ".wav", ".ogg", ".m4a", ".flac")


def editing_router(
    engine: Engine, settings: Settings, page: Pages, signed_in: Any, clock: Clock
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def editable(access: Access, ref: str) -> Any:
        plan = plan_for(engine, access, ref)
        if not may_edit(engine, access, plan):
            raise Forbidden(f"{access.login} không được sửa kế hoạch {plan.number}")
        return plan

    def approvable(access: Access, ref: str) -> Any:
        plan = plan_for(engine, access, ref)
        access.require(APPROVE)
        return plan

    def content_of(plan: Any, key: str) -> None:
        """404 unless the plan has content `key`."""
        from content.approval import find_content

        try:
            find_content(engine, plan.id, key)
        except CosoError as exc:
            raise HTTPException(404, str(exc)) from exc

    def change_plan(
        plan: Any, change: Callable[[dict[str, Any]], None], by: str, folder: Path | None
    ) -> None:
        """The stored plan as a plan file, changed by `change`, checked and applied."""
        stored = stored_plan(engine, plan.number)
        assert stored is not None
        document = plan_document(stored)
        change(document)
        update = check_update(
            engine, settings, plan_text(document), clock.now(), source=FORM, folder=folder
        )
        apply_update(engine, update, by, clock.now())

    def add_to_plan(
        plan: Any, section: str, entry: dict[str, Any], by: str, folder: Path | None
    ) -> None:
        change_plan(plan, lambda document: document[section].append(entry), by, folder)

    # -- the plan's header and targets -----------------------------------------------------

    def plan_edit_page(
        request: Request, plan: Any, errors: list[str], status: int = 200
    ) -> HTMLResponse:
        stored = stored_plan(engine, plan.number)
        assert stored is not None
        return page(
            request,
            "plan_edit.html",
            {
                "plan": plan,
                "document": plan_document(stored),
                "errors": errors,
                "channels": [(n, registry.plugins()[n].title) for n in registry.names()],
            },
            status=status,
        )

    @router.get("/plans/{ref:path}/details", response_class=HTMLResponse)
    def plan_edit_form(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        return plan_edit_page(request, editable(access, ref), [])

    @router.post("/plans/{ref:path}/details", response_model=None)
    async def plan_edit(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> Response:
        from dispatcher.web.planning import check_reach, parse_form_date
        from schedules.planfile import PlanFile

        plan = editable(access, ref)
        form = _Values(await request.form())
        drop = {int(i) for i in form.many("remove_target") if i.isdigit()}

        def change(document: dict[str, Any]) -> None:
            head = document["plan"]
            head["title"] = form.one("title").strip()
            head["issuer"] = form.one("issuer").strip()
            head["period_start"] = parse_form_date("period_start", form.one("period_start"))
            head["period_end"] = parse_form_date("period_end", form.one("period_end"))
            document["targets"] = [t for i, t in enumerate(document["targets"]) if i not in drop]
            if form.one("target_channel"):
                count = form.one("target_count").strip()
                document["targets"].append(
                    {
                        "channel": form.one("target_channel"),
                        "count": int(count) if count.isdigit() else count,
                        "per": form.one("target_per") or "week",
                        "units": form.words("target_units"),
                    }
                )
            check_reach(engine, access, PlanFile.model_validate(document))

        try:
            change_plan(plan, change, access.login, None)
        except Forbidden:
            raise
        except CosoError as exc:
            return plan_edit_page(request, plan, errors_of(exc), 400)
        except ValueError as exc:  # a field the plan file model refuses
            return plan_edit_page(request, plan, [str(exc)], 400)
        return RedirectResponse(f"/plans/{plan.number}", status_code=303)

    # -- content ------------------------------------------------------------------------

    def content_page(
        request: Request, access: Access, plan: Any, key: str, errors: list[str], status: int = 200
    ) -> HTMLResponse:
        versions = list_versions(engine, plan.id, key)
        return page(
            request,
            "content.html",
            {
                "plan": plan,
                "key": key,
                "versions": list(reversed(versions)),
                "current": next((v for v in reversed(versions) if v.state == "approved"), None),
                "latest": versions[-1] if versions else None,
                "may_edit": may_edit(engine, access, plan),
                "may_approve": access.can(APPROVE),
                "errors": errors,
            },
            status=status,
        )

    @router.get("/plans/{ref:path}/content/{key}", response_class=HTMLResponse)
    def content_view(
        request: Request, ref: str, key: str, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        plan = plan_for(engine, access, ref)
        content_of(plan, key)
        return content_page(request, access, plan, key, [])

    @router.post(UPLOADS + "/plans/{ref:path}/content", response_model=None)
    async def content_add(
        request: Request,
        ref: str,
        key: str = Form(""),
        kind: str = Form("article"),
        title: str = Form(""),
        body: str = Form(""),
        audio: UploadFile | None = None,
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = editable(access, ref)
        entry: dict[str, Any] = {"key": key.strip(), "kind": kind, "title": title, "body": body}
        with tempfile.TemporaryDirectory() as folder:
            try:
                if audio is not None and audio.filename:
                    entry["audio"] = await _saved_audio(audio, Path(folder))
                add_to_plan(plan, "content", entry, access.login, Path(folder))
            except CosoError as exc:
                return plan_errors(request, access, plan, errors_of(exc))
        return RedirectResponse(f"/plans/{plan.number}/content/{entry['key']}", status_code=303)

    @router.post("/plans/{ref:path}/content/{key}/edit", response_model=None)
    def content_edit(
        request: Request,
        ref: str,
        key: str,
        title: str = Form(""),
        body: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = editable(access, ref)
        content_of(plan, key)
        try:
            edit_content(engine, plan.id, key, title, body, access.login, clock.now())
        except CosoError as exc:
            return content_page(request, access, plan, key, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}/content/{key}", status_code=303)

    @router.post(UPLOADS + "/plans/{ref:path}/content/{key}/audio", response_model=None)
    async def content_audio(
        request: Request,
        ref: str,
        key: str,
        audio: UploadFile,
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = editable(access, ref)
        content_of(plan, key)
        with tempfile.TemporaryDirectory() as folder:
            try:
                name = await _saved_audio(audio, Path(folder))
                attach_draft_audio(
                    engine,
                    settings.media,
                    plan.id,
                    key,
                    Path(folder) / name,
                    access.login,
                    clock.now(),
                )
            except CosoError as exc:
                return content_page(request, access, plan, key, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}/content/{key}", status_code=303)

    @router.post("/plans/{ref:path}/content/{key}/speak", response_model=None)
    def content_speak(
        request: Request,
        ref: str,
        key: str,
        chime: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        """The item's text spoken (content.speech) as the audio of a new draft version."""
        from content.speech import speak_content

        plan = editable(access, ref)
        content_of(plan, key)
        try:
            speak_content(
                engine, settings, plan.id, key, access.login, clock.now(), chime=bool(chime)
            )
        except CosoError as exc:
            return content_page(request, access, plan, key, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}/content/{key}", status_code=303)

    @router.post("/plans/{ref:path}/content/{key}/approve", response_model=None)
    def content_approve(
        request: Request,
        ref: str,
        key: str,
        version: int = Form(0),
        checksum: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        plan = approvable(access, ref)
        content_of(plan, key)
        try:
            from content.approval import find_content
            from schedules.editing import check_approvable

            check_approvable(engine, plan.number, find_content(engine, plan.id, key))
            approve(engine, plan.id, key, version or None, access.login, clock.now(), checksum)
        except CosoError as exc:
            return content_page(request, access, plan, key, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}/content/{key}", status_code=303)

    @router.post("/plans/{ref:path}/content/{key}/retire", response_model=None)
    def content_retire(
        request: Request, ref: str, key: str, access: Access = Depends(signed_in)
    ) -> Response:
        plan = approvable(access, ref)
        content_of(plan, key)
        try:
            set_state(engine, plan.id, key, "retired", access.login, clock.now())
        except CosoError as exc:
            return content_page(request, access, plan, key, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}/content/{key}", status_code=303)

    # -- schedules ----------------------------------------------------------------------

    def schedule_form(
        request: Request, plan: Any, values: Any, errors: list[str], status: int = 200
    ) -> HTMLResponse:
        from content.approval import list_content

        return page(
            request,
            "schedule_new.html",
            {
                "plan": plan,
                "values": values,
                "errors": errors,
                "content": [c for c in list_content(engine, plan.id) if c.state != "retired"],
                "channels": [(n, registry.plugins()[n].title) for n in registry.names()],
                "kinds": KINDS,
                "weekdays": WEEKDAY_CODES,
            },
            status=status,
        )

    @router.get("/plans/{ref:path}/schedules/new", response_class=HTMLResponse)
    def schedule_new_form(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        plan = editable(access, ref)
        return schedule_form(request, plan, _Values({}), [])

    @router.post("/plans/{ref:path}/schedules/new", response_model=None)
    async def schedule_new(
        request: Request, ref: str, access: Access = Depends(signed_in)
    ) -> Response:
        plan = editable(access, ref)
        form = await request.form()
        values = _Values(form)
        targets = {
            "units": values.words("units"),
            "groups": values.words("groups"),
            "endpoints": values.words("endpoints"),
        }
        entry: dict[str, Any] = {
            "name": values.one("name").strip(),
            "content": values.one("content"),
            "channel": values.one("channel"),
            "targets": {k: v for k, v in targets.items() if v},
            "priority": values.one("priority") or "normal",
        }
        try:
            if values.one("mode") == QUEUE:
                entry |= queued_timing(values)
            else:
                entry |= clock_timing(form, values)
            add_to_plan(plan, "schedules", entry, access.login, None)
        except CosoError as exc:
            return schedule_form(request, plan, values, errors_of(exc), 400)
        return RedirectResponse(f"/plans/{plan.number}#lich", status_code=303)

    # -- a plan file that changes a plan ------------------------------------------------

    @router.post("/plans/update", response_model=None)
    async def plan_update(
        request: Request,
        file: UploadFile | None = None,
        text: str = Form(""),
        fingerprint: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        from dispatcher.web.planning import MAX_PLAN_FILE, check_reach

        access.require(EDIT)
        if file is not None and file.filename:
            data = await file.read(MAX_PLAN_FILE + 1)
            if len(data) > MAX_PLAN_FILE:
                return page(request, "plan_update.html", {"errors": ["tệp kế hoạch lớn quá"]}, 400)
            source: str | bytes = data
        else:
            source = text
        try:
            update = check_update(engine, settings, source, clock.now(), source="tệp tải lên")
            check_reach(engine, access, update.checked.pf)
            if update.stored is not None:
                editable(access, update.number)
        except Forbidden:
            raise
        except CosoError as exc:
            return page(request, "plan_update.html", {"errors": errors_of(exc)}, 400)
        confirmed = fingerprint and fingerprint == update.fingerprint
        if update.stored is None or confirmed:
            try:
                plan = apply_update(engine, update, access.login, clock.now())
            except CosoError as exc:
                return page(request, "plan_update.html", {"errors": errors_of(exc)}, 400)
            return RedirectResponse(f"/plans/{plan.number}", status_code=303)
        shown = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        return page(
            request,
            "plan_update.html",
            {"errors": [], "update": update, "text": shown, "stale": bool(fingerprint)},
        )

    def plan_errors(request: Request, access: Access, plan: Any, errors: list[str]) -> HTMLResponse:
        from dispatcher.web.console import plan_page_context

        context = plan_page_context(engine, access, plan, clock)
        return page(request, "plan.html", context | {"error": "; ".join(errors)}, status=400)

    return router


QUEUE = "queue"  # the form's mode: into the broadcast sessions instead of clock times


def clock_timing(form: Any, values: _Values) -> dict[str, Any]:
    """A schedule's times from the form's timing fields (RRULE, until, validity)."""
    timing = TimingForm.from_fields(form)
    problems = form_problems(timing)
    if problems:
        raise InputErrors(problems)
    stored = stored_timing(timing)
    entry: dict[str, Any] = {"start": datetime.fromisoformat(stored.start_local)}
    if stored.rrule:
        entry["rrule"] = stored.rrule
    if stored.until_local:
        entry["until"] = datetime.fromisoformat(stored.until_local)
    if values.one("validity").strip():
        entry["validity"] = values.one("validity").strip()
    return entry


def queued_timing(values: _Values) -> dict[str, Any]:
    """ "Xếp vào buổi phát": the date range (from, to) and the queue — times per week, which
    sessions (names), when a week is full, the item's length when it has no audio. The
    placing is the plan file's (schedules.plan_import.queued), so a refusal names the
    session, what is in it and the time left."""
    from dispatcher.web.planning import parse_form_date

    errors: list[InputError] = []
    entry: dict[str, Any] = {}
    try:
        entry["start"] = parse_form_date("start", values.one("start"))
    except InputError as exc:
        errors.append(exc)
    if values.one("end").strip():
        try:
            entry["until"] = parse_form_date("end", values.one("end"))
        except InputError as exc:
            errors.append(exc)
    per_week = values.one("per_week").strip() or "1"
    if not (per_week.isdigit() and 1 <= int(per_week) <= 100):
        errors.append(InputError("per_week", per_week, "số lần mỗi tuần: từ 1 đến 100"))
    when_full = values.one("when_full") or "next"
    if when_full not in ("next", "refuse"):
        errors.append(InputError("when_full", when_full, "next (buổi sau) hoặc refuse (từ chối)"))
    if errors:
        raise InputErrors(errors)
    if "until" in entry and entry["until"] < entry["start"]:
        raise InputError("end", values.one("end"), "ngày kết thúc trước ngày bắt đầu")
    queue: dict[str, Any] = {"per_week": int(per_week), "when_full": when_full}
    names = [n.strip() for n in values.one("queue_sessions").split(",") if n.strip()]
    if names:
        queue["sessions"] = names
    if values.one("queue_length").strip():
        length = values.one("queue_length").strip()
        queue["length"] = f"{length}m" if length.isdigit() else length
    entry["queue"] = queue
    return entry


class _Values:
    """Posted form fields, for showing the form again as it was filled in."""

    def __init__(self, form: Any) -> None:
        self.form = form

    def one(self, name: str) -> str:
        value = self.form.get(name, "") if self.form else ""
        return value if isinstance(value, str) else ""

    def many(self, name: str) -> list[str]:
        if hasattr(self.form, "getlist"):
            return [v for v in self.form.getlist(name) if isinstance(v, str)]
        return []

    def words(self, name: str) -> list[str]:
        return self.one(name).replace(",", " ").split()


async def _saved_audio(upload: UploadFile, folder: Path) -> str:
    """The uploaded audio saved in `folder` under its own (base) name; its size bounded."""
    from coso.errors import InputError

    name = Path(upload.filename or "audio").name
    if not name.lower().endswith(AUDIO_SUFFIXES):
        raise InputError("audio", name, f"cần tệp âm thanh ({', '.join(AUDIO_SUFFIXES)})")
    data = await upload.read(MAX_AUDIO + 1)
    if len(data) > MAX_AUDIO:
        raise InputError("audio", name, f"tệp lớn quá {MAX_AUDIO // (1024 * 1024)} MiB")
    (folder / name).write_bytes(data)
    return name
