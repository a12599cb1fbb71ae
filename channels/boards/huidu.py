"""Huidu LED controllers through their device HTTP API ("Device HTTP API Description",
Shenzhen Huidu Technology): JSON over HTTP on port 30080, each request signed.

- `POST /api/device/<id>` with {"method": …, "data": …}: getDeviceProperty (screen size,
  luminance…), getDeviceStatus, setScheduledTask (brightness by time of day)…
- `POST /api/program/<id>` with {"method": "replace" | "getAll" | …, "data": […]}: the
  programs the controller plays, each with a uuid (coso's is `coso-<delivery id>`).
- Headers: requestId (a UUID), sdkKey, date (RFC 1123, GMT) and
  sign = HMAC-MD5(key = SDK secret, message = body + sdkKey + date), lowercase hex.
- Answers: {"method", "message": "ok", "data": [{"id", "message": "ok", "data": …}]}.

Replacing the programme is idempotent (the same programs again show the same thing), and a
send looks first at what the controller has: a send repeated after a crash sends nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from channels.base import PermanentSendError, TransientSendError
from channels.boards.addresses import Board
from channels.boards.settings import HuiduSettings
from coso.durations import parse_duration
from coso.http_client import LazyClient

if TYPE_CHECKING:
    import httpx

DEFAULT_PORT = 30080
PREFIX = "coso-"  # coso's programs on a controller: coso-<delivery id>
COLOR = "#ffcc00"
EVERY_DAY = "Mon,Tue,Wed,Thu,Fri,Sat,Sun"
EVERY_MONTH = "Jan,Feb,Mar,Apr,May,Jun,Jul,Aug,Sep,Oct,Nov,Dec"
PAGE_SECONDS = 3  # the least a page of a long text holds on an LED board


def sign(body: bytes, sdk_key: str, date: str, sdk_secret: str) -> str:
    """HMAC-MD5 of body + sdkKey + date, keyed with the SDK secret (lowercase hex)."""
    message = body + sdk_key.encode() + date.encode()
    return hmac.new(sdk_secret.encode(), message, hashlib.md5).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class ControllerError(Exception):
    """The controller answered, and said no (its own words in `message`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Screen:
    width: int
    height: int


class HuiduClient:
    """Signed requests to controllers; `transport` lets tests use a local server."""

    def __init__(self, cfg: HuiduSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        seconds = parse_duration(cfg.timeout).total_seconds()
        self.http = LazyClient(timeout=seconds, transport=transport)

    def base(self, board: Board) -> str:
        if board.host:
            return f"http://{board.host}:{board.port or DEFAULT_PORT}"
        if self.cfg.gateway:
            return self.cfg.gateway
        raise PermanentSendError(
            f"no address for controller {board.name}: write huidu:{board.name}@host:port "
            "or set channels.boards.huidu.gateway",
            code="no_address",
        )

    def call(self, board: Board, kind: str, method: str, data: Any) -> Any:
        """One request (`kind` "device" or "program"); the controller's own answer for this
        board. Tries `cfg.tries` times on timeouts and server errors, then raises
        TransientSendError; a refusal raises ControllerError."""
        import httpx  # with the first request (coso.http_client)

        if not self.cfg.sdk_key or not self.cfg.sdk_secret:
            raise PermanentSendError(
                "set channels.boards.huidu.sdk_key and sdk_secret", code="no_sdk_key"
            )
        url = f"{self.base(board)}/api/{kind}/{board.name}"
        body = encode({"method": method, "data": data, "id": board.name})
        last = ""
        for attempt in range(self.cfg.tries):
            if attempt:
                time.sleep(min(2.0, 0.25 * 2**attempt))
            date = formatdate(usegmt=True)
            headers = {
                "requestId": str(uuid.uuid4()),
                "sdkKey": self.cfg.sdk_key,
                "date": date,
                "sign": sign(body, self.cfg.sdk_key, date, self.cfg.sdk_secret),
                "Content-Type": "application/json",
            }
            try:
                response = self.http.client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                last = f"bộ điều khiển không trả lời trong {self.cfg.timeout} ({url})"
                continue
            except httpx.TransportError as exc:
                last = f"không kết nối được bộ điều khiển ({url}): {exc}"
                continue
            if response.status_code >= 500 or response.status_code == 429:
                last = f"bộ điều khiển trả lời HTTP {response.status_code} ({url})"
                continue
            return self._answer(board, method, response)
        raise TransientSendError(last)

    def _answer(self, board: Board, method: str, response: httpx.Response) -> Any:
        try:
            reply = response.json()
        except ValueError as exc:
            if response.status_code >= 400:
                raise ControllerError(
                    f"HTTP {response.status_code}: {response.text[:200]}"
                ) from exc
            raise TransientSendError(f"{method}: not JSON: {response.text[:80]!r}") from exc
        if response.status_code >= 400 or not isinstance(reply, dict):
            raise ControllerError(f"HTTP {response.status_code}: {str(reply)[:200]}")
        if reply.get("message") != "ok":
            raise ControllerError(str(reply.get("message") or reply)[:200])
        for part in reply.get("data") or []:
            if isinstance(part, dict) and part.get("id") in (board.name, None):
                if part.get("message") != "ok":
                    raise ControllerError(f"{board.name}: {part.get('message')}"[:200])
                return part.get("data")
        raise ControllerError(f"{method}: the answer says nothing of {board.name}")

    # --- what coso asks of a controller -------------------------------------------------

    def screen(self, board: Board) -> Screen:
        """Its resolution (getDeviceProperty)."""
        props = self.call(board, "device", "getDeviceProperty", [])
        try:
            return Screen(int(props["screen.width"]), int(props["screen.height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControllerError(
                f"getDeviceProperty without a screen size: {props!r}"[:200]
            ) from exc

    def programs(self, board: Board) -> list[str]:
        """The uuids of the programs it has (getAll)."""
        found = self.call(board, "program", "getAll", [])
        items = (found or {}).get("item", []) if isinstance(found, dict) else []
        return [str(i.get("id") or i.get("uuid") or "") for i in items if isinstance(i, dict)]

    def replace(self, board: Board, programs: list[dict[str, Any]]) -> None:
        self.call(board, "program", "replace", programs)

    def brightness(self, board: Board, periods: list[tuple[str, str, int]]) -> None:
        """Its brightness by time of day (setScheduledTask, luminance)."""
        tasks = [
            {
                "timeRange": f"{start}:00~{end}:00",
                "dateRange": "2000-01-01~2099-12-31",
                "WeekFilter": EVERY_DAY,
                "MonthFilter": EVERY_MONTH,
                "data": str(percent),
            }
            for start, end, percent in periods
        ]
        self.call(board, "device", "setScheduledTask", {"luminance": tasks})

    def close(self) -> None:
        self.http.close()


def page_seconds(seconds: int, pages: int) -> int:
    """How long each of an item's `pages` holds: its seconds shared among them, and no
    page less than PAGE_SECONDS (time to read it)."""
    if pages <= 1:
        return seconds
    return max(PAGE_SECONDS, -(-seconds // pages))


def program(
    item: dict[str, Any], screen: Screen, *, images: list[dict[str, Any]] | None, font: str
) -> dict[str, Any]:
    """One coso item as a Huidu program filling the screen: the text itself, or the images
    (`images`: each a file URL, md5 and size) coso drew of it or the item carries. A text
    too long for one screen is several images, the pages of one area, shown one after
    another."""
    if images:
        hold = page_seconds(int(item["seconds"]), len(images))
        contents: list[dict[str, Any]] = [
            {
                "type": "image",
                "file": image["url"],
                "fileMd5": image["md5"],
                "fileSize": image["size"],
                "fit": "center",
                "effect": {"type": 0, "speed": 5, "hold": hold * 1000},
            }
            for image in images
        ]
        seconds = hold * len(images)
    else:
        seconds = int(item["seconds"])
        contents = [
            {
                "type": "text",
                "string": item["text"] or item["title"],
                "multiLine": not item["scroll"],
                "alignment": "center",
                "valignment": "middle",
                "font": {
                    "name": font,
                    "size": max(8, screen.height // 3),
                    "bold": True,
                    "color": COLOR,
                },
                # 26: continuous left movement (text only); 0: shown at once
                "effect": {"type": 26 if item["scroll"] else 0, "speed": 4, "hold": seconds * 1000},
            }
        ]
    return {
        "name": item["title"][:60] or f"coso {item['id']}",
        "type": "normal",
        "uuid": f"{PREFIX}{item['id']}",
        "playControl": {
            "duration": f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        },
        "area": [
            {"x": 0, "y": 0, "width": screen.width, "height": screen.height, "item": contents}
        ],
    }
