"""The boards' web side: the full-screen page a screen opens (/boards/<name>), its event
stream (server-sent events: the programme, pushed), its display reports, pairing, the
shipped font and the items' images; and the console's page where an editor approves a
screen's pairing code (/boards/pairing)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from channels.boards import pairing
from channels.boards.channel import images_folder
from channels.boards.displays import DisplayWriter
from channels.boards.hub import BoardHub, event_text
from channels.boards.images import STATIC
from channels.boards.programme import programmes, stamp
from channels.boards.stream import stream_events
from coso.durations import parse_duration
from coso.errors import InputError

STATIC_FILES = {
    "board.js": "text/javascript; charset=utf-8",
    "board-sw.js": "text/javascript; charset=utf-8",
    "DejaVuSans-Bold.ttf": "font/ttf",
    "DejaVuSans-LICENSE.txt": "text/plain; charset=utf-8",
}
IMAGE = re.compile(r"[0-9a-f]{64}\.(png|jpg)")
MOST_REPORT_BYTES = 256 * 1024


def _refused(exc: InputError, status: int = 403) -> JSONResponse:
    return JSONResponse({"error": str(exc), "field": exc.field}, status_code=status)


def _token(request: Request) -> str | None:
    given = request.headers.get("authorization", "")
    if given.lower().startswith("bearer "):
        return given[7:].strip()
    return request.query_params.get("token")


def board_routes(host: Any, cfg: Any, templates: Any) -> list[Any]:
    engine = host.engine
    now = host.clock.now
    hub = BoardHub(
        engine,
        now,
        cfg.poll_seconds,
        parse_duration(cfg.heartbeat).total_seconds(),
        parse_duration(cfg.offline_after),
    )
    heartbeat = parse_duration(cfg.heartbeat).total_seconds()
    pairing_valid = parse_duration(cfg.pairing_valid)
    images = images_folder(host.settings)
    writer = DisplayWriter(host)

    async def page(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            board = await run_in_threadpool(pairing.screen, engine, name)
        except InputError as exc:
            return HTMLResponse(f"<!doctype html><meta charset=utf-8><p>{exc.reason}</p>", 404)
        return templates.TemplateResponse(
            request,
            "board.html",
            {"name": name, "title": board.name or name, "heartbeat": heartbeat},
            headers={"Cache-Control": "no-cache"},
        )

    def first(endpoint_id: int) -> list[dict[str, Any]]:
        """A screen that connects is online; its programme now."""
        from channels.boards import devices
        from coso.db import write

        with write(engine) as conn:
            devices.set_status(conn, [endpoint_id], online=True, last_seen=now())
        with engine.connect() as conn:
            return programmes(conn, [endpoint_id], now(), emergencies_alone=False)[endpoint_id]

    def gone(endpoint_id: int) -> None:
        from channels.boards import devices
        from coso.db import write

        if endpoint_id not in hub.connected():
            with write(engine) as conn:
                devices.set_status(conn, [endpoint_id], online=False, last_seen=now())

    async def events(scope: Scope, receive: Receive, send: Send) -> None:
        """The screen's event stream (an ASGI app: channels/boards/stream.py)."""
        request = Request(scope)
        name = request.path_params["name"]
        try:
            board = await run_in_threadpool(pairing.check_token, engine, name, _token(request))
        except InputError as exc:
            await _refused(exc, 404 if exc.field == "board" else 403)(scope, receive, send)
            return
        sub = hub.subscribe(board.id, name, asyncio.get_running_loop(), board.token_hash)
        try:
            programme = event_text(name, await run_in_threadpool(first, board.id), now())
            await stream_events(
                sub, programme, receive, send, heartbeat, lambda: f": {stamp(now())}\n\n"
            )
        finally:
            if hub.unsubscribe(sub):
                await run_in_threadpool(gone, board.id)

    async def displayed(scope: Scope, receive: Receive, send: Send) -> None:
        """A screen's display records (an ASGI app: a slot brings a thousand at once)."""
        request = Request(scope, receive)
        name = request.path_params["name"]
        answer: Response
        body = await request.body()
        if len(body) > MOST_REPORT_BYTES:
            answer = JSONResponse({"error": "báo cáo quá lớn"}, status_code=413)
            await answer(scope, receive, send)
            return
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, RecursionError):  # not JSON, or nested past any report
            answer = JSONResponse({"error": "báo cáo không phải JSON"}, status_code=400)
            await answer(scope, receive, send)
            return
        records = payload.get("records") if isinstance(payload, dict) else None
        try:  # the token is checked with the other uploads of its batch, in one query
            result = await writer.upload(name, _token(request), records, now())
        except InputError as exc:
            answer = _refused(exc, 404 if exc.field == "board" else 403)
        else:
            answer = JSONResponse(
                {"accepted": result.accepted, "refused": result.refused},
                status_code=200 if result.accepted or not result.refused else 422,
            )
        await answer(scope, receive, send)

    async def pair(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if request.method == "POST":
                code, claim = await run_in_threadpool(pairing.request_code, engine, name, now())
                return JSONResponse({"code": code, "claim": claim})
            claim = request.query_params.get("claim", "")
            token = await run_in_threadpool(pairing.collect, engine, name, claim)
        except InputError as exc:
            return _refused(exc, 404 if exc.field == "board" else 403)
        return JSONResponse({"token": token} if token else {"waiting": True})

    async def static(request: Request) -> Response:
        file = request.path_params["file"]
        if file not in STATIC_FILES:
            return Response("không có tệp này", 404)
        headers = {"Cache-Control": "public, max-age=86400"}
        if file == "board-sw.js":  # it keeps the boards' pages, under /boards/
            headers = {"Cache-Control": "no-cache", "Service-Worker-Allowed": "/boards/"}
        return FileResponse(STATIC / file, media_type=STATIC_FILES[file], headers=headers)

    async def image(request: Request) -> Response:
        file = request.path_params["file"]
        path = images / file
        if not IMAGE.fullmatch(file) or not path.is_file():
            return Response("không có ảnh này", 404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000"})

    async def pairing_page(request: Request) -> Response:
        access = await run_in_threadpool(_access, engine, request)
        if access is None:
            target = quote(request.url.path, safe="")
            return RedirectResponse(f"/login?next={target}", status_code=303)
        note, status = "", 200
        if request.method == "POST":
            form = await request.form()
            if not _csrf_ok(request, form.get("csrf_token")):
                note, status = "Biểu mẫu đã cũ: hãy tải lại trang.", 403
            elif not access.can("edit"):
                note, status = "Vai trò của bạn không cho phép ghép nối bảng.", 403
            else:
                address = str(form.get("address", ""))
                try:
                    board = await run_in_threadpool(
                        pairing.screen, engine, address.removeprefix("screen:")
                    )
                    if not access.reaches(board.unit_code):
                        raise InputError("address", address, "bảng này không thuộc đơn vị của bạn")
                    await run_in_threadpool(
                        pairing.approve,
                        engine,
                        address,
                        str(form.get("code", "")),
                        access.login,
                        now(),
                        pairing_valid,
                    )
                    note = f"Đã ghép nối {address}."
                except InputError as exc:
                    note, status = exc.reason, 422
        waiting = await run_in_threadpool(pairing.pending, engine, now(), pairing_valid)
        waiting = [w for w in waiting if access.reaches(w.unit_code)]
        request.state.access = access
        return templates.TemplateResponse(
            request,
            "board_pairing.html",
            {
                "access": access,
                "csrf": _csrf(request),
                "private": lambda text: text or "",
                "waiting": waiting,
                "note": note,
                "zone": "Asia/Ho_Chi_Minh",
            },
            status_code=status,
        )

    # What screens ask for (streams, reports, pairing, files) is a router of its own: it
    # is answered past the console's middleware (dispatcher/web/device_paths.py). The
    # console's pages under /boards come first, so the console routes them itself.
    screens = Router(
        routes=[
            Route("/static/{file}", static),
            Route("/images/{file}", image),
            Route("/{name}/events", AsgiEndpoint(events)),
            Route("/{name}/displayed", AsgiEndpoint(displayed), methods=["POST"]),
            Route("/{name}/pair", pair, methods=["GET", "POST"]),
        ]
    )
    return [
        Route("/boards/pairing", pairing_page, methods=["GET", "POST"]),
        Route("/boards/{name}", page),
        Mount("/boards", app=screens),
    ]


def _access(engine: Any, request: Request) -> Any:
    """The signed-in user's Access, as the console's own routes find it, or None."""
    from coso.access import access_for
    from coso.units import unit_tree
    from coso.users import user_by_id

    uid, epoch = request.session.get("uid"), request.session.get("epoch")
    if not isinstance(uid, int) or not isinstance(epoch, int):
        return None
    user = user_by_id(engine, uid)
    if user is None or user.disabled or user.session_epoch != epoch:
        return None
    return access_for(user, unit_tree(engine))


def _csrf(request: Request) -> str:
    import secrets

    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def _csrf_ok(request: Request, given: Any) -> bool:
    import hmac

    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(given, str)
        and hmac.compare_digest(expected, given)
    )


class AsgiEndpoint:
    """An ASGI function as a route's endpoint (a plain function would be taken for a
    request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
