"""A request-body size limit for every route, applied before any route reads the body: a
declared Content-Length above the limit is refused with 413 without reading, and a body
sent without one (chunked) is counted as it arrives and refused with 413 past the limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_LIMIT = 1024 * 1024  # 1 MiB: forms, JSON and webhook callbacks are far smaller
TOO_LARGE = "Nội dung yêu cầu quá lớn (giới hạn {limit} byte)".encode()


class BodyTooLarge(Exception):
    pass


async def refuse(send: Send, limit: int) -> None:
    body = TOO_LARGE.replace(b"{limit}", str(limit).encode())
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware; `limits` maps a path prefix to a larger limit its owner declared."""

    def __init__(
        self, app: ASGIApp, limit: int = DEFAULT_LIMIT, limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.limits = limits or {}

    def limit_for(self, path: str) -> int:
        found = [n for prefix, n in self.limits.items() if path.startswith(prefix)]
        return max(found) if found else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        length = declared_length(scope)
        if length is not None and length > limit:
            await refuse(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await refuse(tracked_send, limit)
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BaseException:
            # The route was reading the body when it went past the limit (the refusal is
            # already sent); the exception may come wrapped in an exception group.
            if received <= limit:
                raise
