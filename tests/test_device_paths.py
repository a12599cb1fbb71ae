"""Requests from devices and gateways go straight to their channel's route, and are
answered as that channel's own app would answer them: a wrong method, an error the route
raises, a crash, middleware of its own; any other path under the prefix is the console's."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from coso.config import Settings
from dispatcher.web.app import create_app
from dispatcher.web.device_paths import DevicePathsFirst, device_mounts
from tests.sms import sms_settings


def console(scope: Scope, receive: Receive, send: Send) -> ASGIApp:
    return PlainTextResponse(f"console {scope['path']}")(scope, receive, send)


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"device {request.path_params['name']} {request.url.path}")


async def whose(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.app.state.name)


async def busy(_request: Request) -> PlainTextResponse:
    raise HTTPException(409, "đang bận")


async def broken(_request: Request) -> PlainTextResponse:
    raise RuntimeError("route bug")


class Stamp:
    """Middleware of a channel's own app: stamps every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def client(*mounts: Mount) -> TestClient:
    app = DevicePathsFirst(console, device_mounts(mounts), lambda inner: inner)
    return TestClient(app, raise_server_exceptions=False)


ROUTES = [
    Route("/{name}/echo", echo, methods=["POST"]),
    Route("/{name}/busy", busy),
    Route("/{name}/broken", broken),
    Route("/{name}/whose", whose),
]


def test_a_device_route_gets_its_path_parameters_and_the_full_path() -> None:
    answer = client(Mount("/dev", app=Starlette(routes=ROUTES))).post("/dev/loa-1/echo")
    assert (answer.status_code, answer.text) == (200, "device loa-1 /dev/loa-1/echo")


def test_a_wrong_method_on_a_device_route_is_405_with_its_methods() -> None:
    answer = client(Mount("/dev", app=Starlette(routes=ROUTES))).get("/dev/loa-1/echo")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_an_http_error_a_device_route_raises_is_its_status() -> None:
    answer = client(Mount("/dev", app=Starlette(routes=ROUTES))).get("/dev/loa-1/busy")
    assert (answer.status_code, answer.text) == (409, "đang bận")


def test_a_device_route_that_crashes_is_a_500_and_the_next_request_is_answered() -> None:
    devices = client(Mount("/dev", app=Starlette(routes=ROUTES)))
    assert devices.get("/dev/loa-1/broken").status_code == 500
    assert devices.post("/dev/loa-2/echo").text == "device loa-2 /dev/loa-2/echo"


def test_paths_under_the_prefix_that_no_device_route_answers_are_the_consoles() -> None:
    devices = client(Mount("/dev", app=Starlette(routes=ROUTES)))
    assert devices.get("/dev/loa-1/settings").text == "console /dev/loa-1/settings"
    assert devices.get("/devices").text == "console /devices"


def test_a_channel_app_with_middleware_of_its_own_is_run_with_it() -> None:
    stamped = Starlette(routes=ROUTES, middleware=[Middleware(Stamp)])
    answer = client(Mount("/dev", app=stamped)).post("/dev/loa-1/echo")
    assert answer.text == "device loa-1 /dev/loa-1/echo"
    assert answer.headers["x-stamp"] == "1"


def test_a_channel_router_with_middleware_of_its_own_is_run_with_it() -> None:
    stamped = Router(routes=ROUTES, middleware=[Middleware(Stamp)])
    answer = client(Mount("/dev", app=stamped)).post("/dev/loa-1/echo")
    assert answer.headers["x-stamp"] == "1"


def test_a_channel_apps_own_body_limit_and_error_page_are_kept() -> None:
    small = client(Mount("/dev", app=Starlette(routes=ROUTES, max_body_size=5)))
    assert small.post("/dev/loa-1/echo", content=b"x" * 100).status_code == 413

    async def sorry(_request: Request, _exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("tạm ngừng", 503)

    handled = Starlette(routes=ROUTES, exception_handlers={Exception: sorry})
    answer = client(Mount("/dev", app=handled)).get("/dev/loa-1/broken")
    assert (answer.status_code, answer.text) == (503, "tạm ngừng")


def test_a_device_route_sees_its_own_app() -> None:
    app = Starlette(routes=ROUTES)
    app.state.name = "loa"
    assert client(Mount("/dev", app=app)).get("/dev/loa-1/whose").text == "loa"


def test_the_sms_webhooks_answer_a_get_with_405_not_an_error(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(engine, sms_settings(settings, "http://127.0.0.1:9"))
    with caplog.at_level(logging.ERROR), TestClient(app) as web:
        answer = web.get("/sms/status")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
