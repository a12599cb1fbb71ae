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


def route_scope(app: ASGIApp, routes: Sequence[BaseRoute], scope: Scope) -> Scope | None:
    """The scope a request inside a mounted app is handled with by the app's route for it
    (path parameters, and the `app`, `router` and `route` the app's router sets), the route
    chosen as that router would: the first full match, else the first partial one (a route
    of the path for another method); None when none answers the path."""
    inner = {**scope, "router": app.router if isinstance(app, Starlette) else app}
    if isinstance(app, Starlette):
        inner["app"] = app
    partial: Scope | None = None
    for route in routes:
        match, more = route.matches(inner)
        if match is Match.FULL:
            return {**inner, **more, "route": route}
        if match is Match.PARTIAL and partial is None:
            partial = {**inner, **more, "route": route}
    return partial


def runs_from_its_routes(app: ASGIApp) -> bool:
    """Whether a mounted app is no more than its routes: no middleware, body limit, error
    handler or debug pages of its own, which a request past its stack would miss. Such an
    app is run from the route a request matches; any other app is run whole."""
    if type(app) is Router:
        return app.middleware_stack == app.app
    if type(app) is Starlette:
        return not (
            app.user_middleware
            or app.debug
            or app.max_body_size is not None
            or any(key in (500, Exception) for key in app.exception_handlers)
        )
    return False


def exception_handlers(app: ASGIApp) -> ExceptionMiddleware:
    """What the mounted app's own exception middleware answers errors with (HTTPException
    as its status, the app's own handlers), around the route chosen for a request."""
    return ExceptionMiddleware(_chosen_route, handlers=getattr(app, "exception_handlers", {}))


async def _chosen_route(scope: Scope, receive: Receive, send: Send) -> None:
    await scope["route"].handle(scope, receive, send)


class DevicePathsFirst:
    """ASGI: a request one of `mounts` answers goes straight to that app, behind the body
    limit; everything else to `console`, the app's whole middleware stack. An app that is
    no more than its routes is run from the route found here, behind its exception
    handlers: its own stack (error middleware, router) is not run again per request."""

    def __init__(
        self, console: ASGIApp, mounts: Sequence[Mount], limited: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.console = console
        # (mount, whether it is run from its routes, what a request it answers goes to)
        self.mounts: list[tuple[Mount, bool, ASGIApp]] = []
        for m in mounts:
            plain = runs_from_its_routes(m.app)
            self.mounts.append((m, plain, limited(exception_handlers(m.app) if plain else m.app)))
        self.prefixes = tuple(m.path + "/" for m in mounts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            for mount, from_routes, app in self.mounts:
                found, child = mount.matches(scope)
                if found is Match.NONE:
                    continue
                inner = {**scope, **child}
                routed = route_scope(mount.app, mount.routes, inner)
                if routed is None:  # a console page under the same prefix
                    continue
                await app(routed if from_routes else inner, receive, send)
                return
        await self.console(scope, receive, send)
