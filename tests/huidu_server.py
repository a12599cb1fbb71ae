"""A Huidu controller on loopback, as its "Device HTTP API Description" defines it: POST
/api/device/<id> and /api/program/<id>, JSON {"method", "data"}, and every request signed:
headers requestId, sdkKey, date (RFC 1123, GMT) and sign = HMAC-MD5(body + sdkKey + date)
keyed with the SDK secret. It answers as the document's examples do, keeps the programs
and brightness it is given, and fails on demand (slow answers, server errors, down)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import ThreadingHTTPServer
from typing import Any

from tests.http_fakes import JsonHandler

SDK_KEY = "a7fa6795aaa891e2"
SDK_SECRET = "bí-mật-của-bộ-điều-khiển"
DATE_SLACK = timedelta(minutes=15)


@dataclass
class Controller:
    id: str
    width: int = 128
    height: int = 64
    programs: list[dict[str, Any]] = field(default_factory=list)
    luminance: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Seen:
    method: str
    path: str
    call: str | None  # the JSON method
    refused: str | None  # why the request was refused, or None


class HuiduServer:
    def __init__(self, *controllers: Controller) -> None:
        self.controllers = {c.id: c for c in controllers}
        self.seen: list[Seen] = []
        self.slow = 0  # the next this many requests answer after `slow_for` seconds
        self.slow_for = 2.0
        self.errors = 0  # the next this many requests answer 500
        self.lock = threading.Lock()
        server = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # the API's program and device calls are POSTs
                server.seen.append(Seen("GET", self.path, None, "method"))
                self._reply(405, {"message": "method not allowed"})

            def do_POST(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HuiduServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def calls(self, name: str) -> list[Seen]:
        return [s for s in self.seen if s.call == name and s.refused is None]

    # --- the protocol -----------------------------------------------------------------

    def check(self, handler: JsonHandler, body: bytes) -> str | None:
        """Why this request is refused, or None: the document's headers and signature."""
        h = handler.headers
        if h.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return "Content-Type is not application/json"
        try:
            uuid.UUID(h.get("requestId", ""))
        except ValueError:
            return "requestId is not a UUID"
        if h.get("sdkKey") != SDK_KEY:
            return "unknown sdkKey"
        date = h.get("date", "")
        try:
            when = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return "date is not an HTTP date"
        if not date.endswith(" GMT") or abs(when - datetime.now(UTC)) > DATE_SLACK:
            return "date is not the current GMT time"
        expected = hmac.new(
            SDK_SECRET.encode(), body + SDK_KEY.encode() + date.encode(), hashlib.md5
        ).hexdigest()
        if not hmac.compare_digest(h.get("sign", ""), expected):
            return "sign error"
        return None

    def handle(self, handler: JsonHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        kind, _, ident = handler.path.removeprefix("/api/").partition("/")
        ident = ident.strip("/")
        try:
            request = json.loads(body)
            call = request.get("method")
        except ValueError:
            request, call = {}, None
        refused = self.check(handler, body)
        with self.lock:
            slow = self.slow > 0
            self.slow -= 1 if slow else 0
            error = self.errors > 0
            self.errors -= 1 if error else 0
        self.seen.append(Seen("POST", handler.path, call, refused))
        if slow:
            time.sleep(self.slow_for)
        if error:
            handler._reply(500, {"message": "internal error"})
            return
        if refused:
            handler._reply(401, {"message": refused})
            return
        device = self.controllers.get(ident)
        if kind not in ("device", "program") or device is None:
            handler._reply(404, {"message": f"no device {ident}"})
            return
        handler._reply(200, self.answer(device, kind, call, request.get("data")))

    def answer(self, device: Controller, kind: str, call: Any, data: Any) -> dict[str, Any]:
        def ok(result: Any = "kSuccess") -> dict[str, Any]:
            return {
                "method": call,
                "message": "ok",
                "data": [{"id": device.id, "message": "ok", "data": result}],
            }

        if kind == "device" and call == "getDeviceProperty":
            return ok(
                {
                    "name": "BoxPlayer",
                    "screen.width": str(device.width),
                    "screen.height": str(device.height),
                    "luminance": "100",
                }
            )
        if kind == "device" and call == "setScheduledTask":
            device.luminance = list((data or {}).get("luminance", []))
            return ok()
        if kind == "program" and call == "getAll":
            return ok({"item": [{"id": p["uuid"], "name": p["name"]} for p in device.programs]})
        if kind == "program" and call == "replace":
            wrong = next(filter(None, (bad_program(p, device) for p in data or [])), None)
            if wrong:
                return {"method": call, "message": f"invalid program: {wrong}", "data": []}
            device.programs = list(data or [])
            return ok()
        return {"method": call, "message": f"unknown method {call}", "data": []}


def bad_program(program: Any, device: Controller) -> str | None:
    """What is wrong with a program as the document describes one, or None: a uuid, a
    duration, areas inside the screen, each with its items (text with its string; image
    with its file's URL, md5 and size), played one after another."""
    if not isinstance(program, dict) or not isinstance(program.get("uuid"), str):
        return "a program needs a uuid"
    duration = str((program.get("playControl") or {}).get("duration", ""))
    if len(duration.split(":")) != 3 or not duration.replace(":", "").isdigit():
        return f"playControl.duration {duration!r} is not HH:MM:SS"
    areas = program.get("area")
    if not isinstance(areas, list) or not areas:
        return "a program needs an area"
    for area in areas:
        x, y, w, h = (area.get(k) for k in ("x", "y", "width", "height"))
        if not all(isinstance(v, int) for v in (x, y, w, h)):
            return "an area's x, y, width and height are integers"
        if x < 0 or y < 0 or x + w > device.width or y + h > device.height:
            return f"area {x},{y} {w}x{h} is outside the {device.width}x{device.height} screen"
        items = area.get("item")
        if not isinstance(items, list) or not items:
            return "an area needs items"
        for item in items:
            hold = (item.get("effect") or {}).get("hold")
            if not isinstance(hold, int) or hold <= 0:
                return "an item's effect.hold is a number of milliseconds"
            if item.get("type") == "text" and not isinstance(item.get("string"), str):
                return "a text item needs its string"
            if item.get("type") == "image" and not (
                str(item.get("file", "")).startswith("http")
                and len(str(item.get("fileMd5", ""))) == 32
                and isinstance(item.get("fileSize"), int)
            ):
                return "an image item needs file (a URL), fileMd5 and fileSize"
            if item.get("type") not in ("text", "image"):
                return f"unknown item type {item.get('type')!r}"
    return None
