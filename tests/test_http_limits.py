"""Request bodies are limited on every route before they are read."""

from __future__ import annotations

import socket

from sqlalchemy import Engine

from coso.config import Settings
from dispatcher.web.app import create_app
from tests.conftest import ServerThread

FIFTY_MB = 50 * 1024 * 1024


def raw_request(port: int, head: bytes, body_chunks: list[bytes]) -> tuple[bytes, int]:
    """Send head then body chunks until the server answers or closes; return the answer
    and how many body bytes were sent before it did."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
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
    with ServerThread(create_app(engine, settings)) as web:
        head = (
            b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {FIFTY_MB}\r\n\r\n".encode()
        )
        answer, sent = raw_request(web.port, head, [b"x" * 65536] * (FIFTY_MB // 65536))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < FIFTY_MB // 2  # answered long before the body was sent


def test_chunked_body_past_the_limit_is_refused_413(engine: Engine, settings: Settings) -> None:
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with ServerThread(create_app(engine, settings)) as web:
        head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        answer, sent = raw_request(web.port, head, [framed] * 800)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
