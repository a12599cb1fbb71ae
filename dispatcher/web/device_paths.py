"""Requests from devices and gateways (a channel's own Starlette app, mounted at a prefix:
status callbacks, media for players, screens' streams and display reports) go straight to
that app, with the body limit, past the console's middleware (sessions, FastAPI's stack,
exception pages) that they never use. Status callbacks and display reports come by the
thousand per second: the console's stack cost more per request than the request's own work.

A mount may share its prefix with console pages (the boards' `/boards/pairing` beside the
screens' `/boards/<name>/events`): a request goes to the device app only when one of the
app's own routes answers its path; any other path under the prefix is the console's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Receive, Scope, Send


def device_mounts(routes: Sequence[object]) -> list[Mount]:
    """The mounts among a channel's routes whose app is a plain Starlette app or router
    (not pages of the console, which need its sessions and error pages)."""
    return [
        r
        for r in routes
        # a FastAPI app is a subclass of Starlette: it is the console's
        if isinstance(r, Mount) and type(r.app) in (Starlette, Router)
    ]


def answers(mount: Mount, scope: Scope) -> bool:
    """Whether one of the mounted app's own routes matches this request's path."""
    found, child = mount.matches(scope)
    if found is Match.NONE:
        return False
    inner = {**scope, **child}
    return any(route.matches(inner)[0] is not Match.NONE for route in mount.routes)


class DevicePathsFirst:
    """ASGI: a request one of `mounts` answers goes to `direct` (the mounts behind the body
    limit); everything else to `console`, the app's whole middleware stack."""

    def __init__(
        self, console: ASGIApp, mounts: Sequence[Mount], limited: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.console = console
        self.mounts = list(mounts)
        self.prefixes = tuple(m.path + "/" for m in mounts)
        self.direct = limited(Router(routes=list(mounts)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(self.prefixes)
            and any(answers(m, scope) for m in self.mounts)
        ):
            await self.direct(scope, receive, send)
            return
        await self.console(scope, receive, send)
