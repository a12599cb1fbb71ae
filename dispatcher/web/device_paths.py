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
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match, Mount, Router
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


def device_route(mount: Mount, scope: Scope) -> tuple[BaseRoute, Scope] | None:
    """The mounted app's own route for this request, with the scope it is handled with
    (path parameters, root path), chosen as the app's router would: the first full match,
    else the first partial one (a route of the path for another method); None when no
    route of the app answers the path."""
    found, child = mount.matches(scope)
    if found is Match.NONE:
        return None
    inner = {**scope, **child}
    partial: tuple[BaseRoute, Scope] | None = None
    for route in mount.routes:
        match, more = route.matches(inner)
        if match is Match.FULL:
            return route, {**inner, **more}
        if match is Match.PARTIAL and partial is None:
            partial = route, {**inner, **more}
    return partial


def exception_handlers(app: ASGIApp) -> ExceptionMiddleware:
    """What the mounted app's own exception middleware answers errors with (HTTPException
    as its status, the app's own handlers), around the route chosen for a request."""
    handlers = getattr(app, "exception_handlers", {})
    handled = {k: v for k, v in handlers.items() if k not in (500, Exception)}
    return ExceptionMiddleware(_chosen_route, handlers=handled)


async def _chosen_route(scope: Scope, receive: Receive, send: Send) -> None:
    await scope.pop(ROUTE)(scope, receive, send)


ROUTE = "coso.device_route"


def _has_middleware(app: ASGIApp) -> bool:
    return bool(getattr(app, "user_middleware", None))


class DevicePathsFirst:
    """ASGI: a request one of `mounts` answers goes straight to its route, behind the body
    limit and the mounted app's exception handling; everything else to `console`, the
    app's whole middleware stack. The route is found once: the mounted app's own stack
    (its router, middleware) is not run again per request."""

    def __init__(
        self, console: ASGIApp, mounts: Sequence[Mount], limited: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.console = console
        # An app with middleware of its own is run whole; the others from the route.
        self.mounts = [
            (m, limited(m.app if _has_middleware(m.app) else exception_handlers(m.app)))
            for m in mounts
        ]
        self.prefixes = tuple(m.path + "/" for m in mounts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            for mount, direct in self.mounts:
                found = device_route(mount, scope)
                if found is not None:
                    route, inner = found
                    inner[ROUTE] = route.handle  # unused by an app run whole
                    await direct(inner, receive, send)
                    return
        await self.console(scope, receive, send)
