"""Request bodies are limited on every route before they are read."""

from __future__ import annotations

import contextlib
import socket

import httpx
import pytest
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from channels.sms.channel import STATUS_PATH
from coso.config import Settings
from dispatcher.web.app import create_app
from tests.conftest import ServerThread
from tests.sms import AUTH_TOKEN, sms_settings

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
