"""A screen's event stream (server-sent events) written straight to its connection: a slot
pushes a programme to a thousand screens at once, and each message is one write and
nothing more (a streaming response that waits with a timeout per message costs a task per
message and a task group per stream, which made the push the slowest part of a slot)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Message, Receive, Send

from channels.boards.hub import Subscriber

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
RETRY = "retry: 2000\n\n"  # a screen whose stream drops asks again after 2 s


def _body(text: str) -> Message:
    return {"type": "http.response.body", "body": text.encode(), "more_body": True}


async def stream_events(
    sub: Subscriber,
    first: str,
    receive: Receive,
    send: Send,
    heartbeat: float,
    beat: Callable[[], str],
) -> None:
    """Send `first`, then each programme the hub hands `sub`, and `beat()` after
    `heartbeat` seconds without one; until the screen goes away or the hub lets it go."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        sub.put(None)  # the screen went away: the stream ends

    watcher = asyncio.create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send(_body(RETRY + first))
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    text = await sub.queue.get()
            except TimeoutError:
                text = beat()
            if text is None:
                break
            await send(_body(text))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:  # the connection closed while a message was written
        pass
    finally:
        watcher.cancel()
