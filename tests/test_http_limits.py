"""Request bodies are limited on every route before they are read."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from channels.sms.channel import INBOUND_PATH, STATUS_PATH
from channels.sms.recipients import list_opt_outs
from coso.config import Settings
from dispatcher.web.app import create_app
from tests.conftest import ServerThread
from tests.console import PASSWORD, make_user, token_of
from tests.sms import AUTH_TOKEN, import_sms_plan, sms_settings
from tests.twilio_server import post_callback, sign

FIFTY_MB = 50 * 1024 * 1024
# A signature of the right shape (not the right value): the route goes on to read the body.
SHAPED = b"X-Twilio-Signature: " + b"A" * 27 + b"=\r\n"
GATEWAY = "http://127.0.0.1:9"  # never called by these tests


def raw_request(port: int, head: bytes, body_chunks: list[bytes]) -> tuple[bytes, int]:
    """Send head then body chunks until the server answers or closes; return the answer
    and how many body bytes were sent before it did."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        for chunk in body_chunks:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            sock.setblocking(True)
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
            sock.settimeout(0.0)
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    return answer, sent


def test_declared_50mb_body_is_refused_413_before_reading(
    engine: Engine, settings: Settings
) -> None:
    with ServerThread(create_app(engine, sms_settings(settings, GATEWAY))) as web:
        head = (
            b"POST "
            + STATUS_PATH.encode()
            + b" HTTP/1.1\r\nHost: x\r\n"
            + SHAPED
            + f"Content-Length: {FIFTY_MB}\r\n\r\n".encode()
        )
        answer, sent = raw_request(web.port, head, [b"x" * 65536] * (FIFTY_MB // 65536))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < FIFTY_MB // 2  # answered long before the body was sent


def test_chunked_body_past_the_limit_is_refused_413(engine: Engine, settings: Settings) -> None:
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with ServerThread(create_app(engine, sms_settings(settings, GATEWAY))) as web:
        head = (
            b"POST "
            + STATUS_PATH.encode()
            + b" HTTP/1.1\r\nHost: x\r\n"
            + SHAPED
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answer, _ = raw_request(web.port, head, [framed] * 800)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_invalid_utf8_signed_body_is_refused_400_without_traceback(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sms_settings(settings, GATEWAY)
    body = b"MessageSid=SM1&MessageStatus=\xff\xfe"
    url = settings.server.public_url.rstrip("/") + STATUS_PATH
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    with ServerThread(create_app(engine, settings)) as web:
        answer = httpx.post(
            web.url + STATUS_PATH,
            content=body,
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert answer.status_code == 400, answer.text
    assert "UTF-8" in answer.text
    assert "Traceback" not in caplog.text


def test_signed_callback_still_works_after_refused_posts(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = sms_settings(settings, GATEWAY)
    number = "+84912345678"
    with ServerThread(create_app(engine, settings)) as web:
        settings.server.public_url = web.url
        url = web.url + INBOUND_PATH
        head = (
            b"POST "
            + INBOUND_PATH.encode()
            + b" HTTP/1.1\r\nHost: x\r\n"
            + SHAPED
            + f"Content-Length: {FIFTY_MB}\r\n\r\n".encode()
        )
        for _ in range(4):  # four 50 MB posts, refused before their bodies are read
            answer, _sent = raw_request(web.port, head, [b"x" * 65536] * 64)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        unsigned = httpx.post(url, data={"From": number, "Body": "STOP"})
        forged = httpx.post(
            url,
            data={"From": number, "Body": "STOP"},
            headers={"X-Twilio-Signature": "A" * 27 + "="},
        )
        not_utf8 = httpx.post(
            url,
            content=b"From=%2B84912345678&Body=\xff\xfe",
            headers={
                "X-Twilio-Signature": sign(url, {}),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert (unsigned.status_code, forged.status_code, not_utf8.status_code) == (403, 403, 400)
        assert list_opt_outs(engine) == []  # nothing refused was recorded
        reply = post_callback(url, {"From": number, "Body": "STOP"})
    assert reply.status_code == 200 and "<Response" in reply.text
    assert [o.phone for o in list_opt_outs(engine)] == [number]


PLAUSIBLE = {
    "ref": ["12/KH-UBND", "1"],
    "name": ["0" * 64 + ".mp3"],
    "file": ["board.js", "0" * 64 + ".png"],
    "path": ["swagger-ui.css"],
    "schedule_id": ["1"],
    "change_id": ["1"],
    "action": ["enable", "disable"],
    "key": ["nhac-lich"],
    "code": ["06040"],
    "delivery_id": ["1"],
    "alert_id": ["1"],
    "login": ["admin"],
    "format": ["csv", "xlsx", "docx", "pdf"],
}
HOSTILE = [
    "0",
    "-1",
    "99999999999999999999999999",
    "\u00b2",  # a digit to str.isdigit, not to int()
    "%00",
    "%FF%FE",
    "..%2F..%2Fetc%2Fpasswd",
    "%E2%80%AE",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "1'%20OR%20'1'='1",
    "x" * 4000,
]
BAD_QUERIES = ["q=%FF%FE&%C0%AF=1", "a=" + "x" * 60_000, "limit=-1&plan=%00&unit=%E2%80%AE"]
BAD_BODIES = [
    ("application/json", b'{"a": "\xff\xfe"'),
    ("application/json", b"[" * 100_000),
    ("application/x-www-form-urlencoded", b"a=\xff\xfe&%%=1"),
    ("multipart/form-data", b"--x\r\n\xff"),  # no boundary
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n\xff"),
    ("text/plain; charset=utf-8", b"\xc0\xaf\xff"),
    ("application/xml", b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"),
    ("", b"\x00" * 1024),
]


def _routes(routes: list[Any], prefix: str = "") -> list[tuple[str, list[str], set[str]]]:
    """(path template, its parameters, methods) for every route, through mounts and
    included routers; a mount of files (static) counts as one route taking a `path`."""
    found: list[tuple[str, list[str], set[str]]] = []
    for route in routes:
        if not hasattr(route, "path"):  # a router included into the app
            inner = getattr(route, "original_router", route)
            found += _routes(list(inner.routes), prefix)
        elif hasattr(route, "methods") and route.methods:
            found.append((prefix + route.path, list(route.param_convertors), set(route.methods)))
        elif getattr(route, "routes", None):
            found += _routes(list(route.routes), prefix + route.path)
        else:
            found.append((prefix + route.path + "/{path}", ["path"], {"GET", "HEAD"}))
    return found


def _fill(template: str, params: list[str], value: str | None) -> str:
    path = template
    for name in params:
        path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", value or PLAUSIBLE[name][0], path)
    return path


@pytest.mark.parametrize("who", ["anyone", "administrator"])
def test_every_route_answers_bad_paths_bodies_and_queries_without_a_5xx(
    engine: Engine, settings: Settings, tmp_path: Path, who: str
) -> None:
    settings = sms_settings(settings, GATEWAY)
    import_sms_plan(engine, settings, tmp_path)
    app = create_app(engine, settings)
    routes = _routes(list(app.routes))
    paths = {template for template, _params, _methods in routes}
    assert {"/", "/plans/{ref:path}", "/sms/status", "/media/{name}", "/healthz"} <= paths
    failures: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        if who == "administrator":  # signed in, every form's token sent: the routes' own checks
            make_user(engine, "admin", ["administrator"], [])
            token = token_of(client.get("/login"))
            client.post(
                "/login", data={"login": "admin", "password": PASSWORD, "csrf_token": token}
            )
            client.headers["X-CSRF-Token"] = token_of(client.get("/"))

        def check(method: str, url: str, **kwargs: Any) -> None:
            answer = client.request(method, url, **kwargs)
            if answer.status_code >= 500:
                failures.append(
                    f"{method} {url[:80]} {kwargs.get('headers')}: {answer.status_code}"
                )

        for template, params, methods in routes:
            values = [v for name in params for v in PLAUSIBLE[name]] + HOSTILE if params else [None]
            for method in sorted(methods):
                for value in values:
                    check(method, _fill(template, params, value))
                url = _fill(template, params, None)
                for query in BAD_QUERIES:
                    check(method, f"{url}?{query}")
                if method == "HEAD":
                    continue
                for kind, body in BAD_BODIES:
                    headers = {"Content-Type": kind} if kind else {}
                    headers["X-Twilio-Signature"] = "A" * 27 + "="  # shaped: bodies get read
                    check(method, url, content=body, headers=headers)
    assert failures == []


def test_signed_callback_with_a_control_character_is_refused_400(
    engine: Engine, settings: Settings
) -> None:
    settings = sms_settings(settings, GATEWAY)
    with ServerThread(create_app(engine, settings)) as web:
        settings.server.public_url = web.url
        status = post_callback(
            web.url + STATUS_PATH, {"MessageSid": "SM\x00", "MessageStatus": "delivered"}
        )
        inbound = post_callback(
            web.url + INBOUND_PATH, {"From": "+84912\x00345678", "Body": "STOP"}
        )
    assert (status.status_code, inbound.status_code) == (400, 400)
    assert "ký tự điều khiển" in status.text
    assert list_opt_outs(engine) == []
