"""Requests from devices and gateways (a channel's own Starlette app, mounted at a prefix:
status callbacks, media for players) go straight to that app, with the body limit, past
the console's middleware (sessions, FastAPI's stack, exception pages) that they never use.
Status callbacks come by the thousand per second: the console's stack cost more per
callback than the callback's own work."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.routing import Mount, Router
from starlette.types import ASGIApp, Receive, Scope, Send


def device_mounts(routes: Sequence[object]) -> list[Mount]:
    """The mounts among a channel's routes whose app is a plain Starlette app (not pages
    of the console, which need its sessions and error pages)."""
    return [
        r
        for r in routes
        if isinstance(r, Mount) and type(r.app) is Starlette  # a FastAPI app is a subclass
    ]


class DevicePathsFirst:
    """ASGI: a request under one of `mounts` goes to `direct` (the mounts behind the body
    limit); everything else to `console`, the app's whole middleware stack."""

    def __init__(
        self, console: ASGIApp, mounts: Sequence[Mount], limited: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.console = console
        self.prefixes = tuple(m.path + "/" for m in mounts)
        self.direct = limited(Router(routes=list(mounts)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.direct(scope, receive, send)
            return
        await self.console(scope, receive, send)
