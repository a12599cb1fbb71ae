"""A local HTTP server speaking the part of Twilio's Messages API coso uses.

Create (`POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, Basic auth), list
(`GET …/Messages.json?To=…&DateSent>=…`), errors as Twilio sends them (JSON with code,
message, more_info, status; 429 with Retry-After), and status callbacks POSTed to each
message's StatusCallback, signed with X-Twilio-Signature like Twilio signs them.

    python -m tests.twilio_server --port 8099   # as its own process (bench)
"""

from __future__ import annotations

import argparse
import base64
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from twilio.request_validator import RequestValidator

from tests.http_fakes import JsonHandler

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PREFIX = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages"


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post_callback(url: str, form: dict[str, str], session: Any = None, token: str = AUTH_TOKEN):  # type: ignore[no-untyped-def]
    """POST a status callback as Twilio does (form, signed); returns the response."""
    http = session or requests
    return http.post(url, data=form, headers={"X-Twilio-Signature": sign(url, form, token)})


@dataclass
class Message:
    sid: str
    to: str
    sender: str
    body: str
    status: str
    created: datetime
    callback: str | None
    validity: int | None
    segments: int
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": ACCOUNT_SID,
            "to": self.to,
            "from": self.sender,
            "body": self.body,
            "status": self.status,
            "num_segments": str(self.segments),
            "num_media": "0",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": format_datetime(self.created),
            "date_updated": format_datetime(self.created),
            "date_sent": format_datetime(self.created),
            "error_code": self.error_code,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"{PREFIX}/{self.sid}.json",
            "messaging_service_sid": None,
            "subresource_uris": {},
        }


@dataclass
class Behaviour:
    """What the gateway does with the next requests (tests change these)."""

    permanent: dict[str, int] = field(default_factory=dict)  # to → error code at create
    throttle_once: set[str] = field(default_factory=set)  # to → one 429 first
    retry_after: int = 1
    undelivered: dict[str, int] = field(default_factory=dict)  # to → callback error code
    callbacks: bool = True
    create_delay: float = 0.0  # seconds before answering a create
    # An outage: until this time.time(), every create is refused, 429 (with
    # outage_retry_after) for the numbers in outage_throttled, 503 for the others.
    outage_until: float = 0.0
    outage_retry_after: int = 1
    outage_throttled: set[str] = field(default_factory=set)


class _Listening(ThreadingHTTPServer):
    """Threads that end with the server, and a backlog for many senders connecting at once:
    set on the class, as the constructor listens (an attribute set on the instance after
    it is made comes too late, and a backlog of 5 refuses a burst of connections)."""

    daemon_threads = True
    request_queue_size = 1024


class TwilioServer:
    def __init__(self, port: int = 0, callback_workers: int = 8) -> None:
        self.messages: dict[str, Message] = {}
        self.creates: list[str] = []  # `To` of every create request that made a message
        self.rejected: list[tuple[str, int]] = []  # (to, HTTP status) of refused creates
        self.attempts: list[tuple[str, float, int]] = []  # (to, time.time(), status): creates
        self.behaviour = Behaviour()
        self.callbacks_sent = 0
        self.callback_failures: list[str] = []
        self.lock = threading.Lock()
        self._throttled: set[str] = set()
        self._callbacks: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self.httpd = _Listening(("127.0.0.1", port), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._workers = [
            threading.Thread(target=self._send_callbacks, daemon=True)
            for _ in range(callback_workers)
        ]

    def __enter__(self) -> TwilioServer:
        self.thread.start()
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in self._workers:
            self._callbacks.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()

    def to(self, number: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages.values() if m.to == number]

    def wait_callbacks_idle(self, timeout: float = 30.0) -> bool:
        """True once every queued callback has been posted."""
        deadline = datetime.now(UTC).timestamp() + timeout
        while datetime.now(UTC).timestamp() < deadline:
            if self._callbacks.unfinished_tasks == 0:
                return True
            threading.Event().wait(0.05)
        return False

    def _refuse(self, to: str, status: int) -> None:
        with self.lock:
            self.rejected.append((to, status))
            self.attempts.append((to, time.time(), status))

    # --- callbacks ----------------------------------------------------------------------

    def _queue_callbacks(self, message: Message) -> None:
        if not message.callback or not self.behaviour.callbacks:
            return
        base = {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "From": message.sender,
            "To": message.to,
            "ApiVersion": "2010-04-01",
        }
        code = self.behaviour.undelivered.get(message.to)
        final = (
            {"MessageStatus": "undelivered", "ErrorCode": str(code)}
            if code
            else {"MessageStatus": "delivered"}
        )
        # Two workers may post these at once: they can arrive out of order, as Twilio's do.
        self._callbacks.put((message.callback, {**base, "MessageStatus": "sent"}))
        self._callbacks.put((message.callback, {**base, **final}))

    def _send_callbacks(self) -> None:
        session = requests.Session()
        while True:
            item = self._callbacks.get()
            if item is None:
                self._callbacks.task_done()
                return
            url, form = item
            status = form["MessageStatus"]
            with self.lock:
                message = self.messages.get(form["MessageSid"])
                if message is not None:
                    message.status = status
                    if form.get("ErrorCode"):
                        message.error_code = int(form["ErrorCode"])
            try:
                response = post_callback(url, form, session)
                if response.status_code >= 300:
                    self.callback_failures.append(
                        f"{form['MessageSid']} {status}: {response.status_code}"
                    )
                else:
                    with self.lock:
                        self.callbacks_sent += 1
            except requests.RequestException as exc:
                self.callback_failures.append(f"{form['MessageSid']} {status}: {exc}")
            finally:
                self._callbacks.task_done()

    # --- HTTP ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in separate writes

            def _error(
                self, status: int, code: int, message: str, headers: dict[str, str] | None = None
            ) -> None:
                self._reply(
                    status,
                    {
                        "code": code,
                        "message": message,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                    headers,
                )

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._error(401, 20003, "Authenticate")
                    return False
                return True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if urlparse(self.path).path != f"{PREFIX}.json":
                    self._error(404, 20404, "The requested resource was not found")
                    return
                if not self._authorised():
                    return
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                to, body = form.get("To", ""), form.get("Body", "")
                sender = form.get("From") or form.get("MessagingServiceSid", "")
                if not to or not body or not sender:
                    self._error(400, 21604, "A 'To', 'Body' and 'From' are required")
                    return
                b = server.behaviour
                if b.create_delay:
                    threading.Event().wait(b.create_delay)
                with server.lock:
                    throttle = to in b.throttle_once and to not in server._throttled
                    if throttle:
                        server._throttled.add(to)
                code = b.permanent.get(to)
                if time.time() < b.outage_until:
                    if to in b.outage_throttled:
                        server._refuse(to, 429)
                        self._error(
                            429, 20429, "Too Many Requests",
                            {"Retry-After": str(b.outage_retry_after)},
                        )  # fmt: skip
                    else:
                        server._refuse(to, 503)
                        self._error(503, 20503, "Service Unavailable")
                    return
                if throttle:
                    server._refuse(to, 429)
                    self._error(
                        429, 20429, "Too Many Requests", {"Retry-After": str(b.retry_after)}
                    )
                    return
                if code is not None:
                    server._refuse(to, 400)
                    self._error(400, code, f"Error {code} for {to}")
                    return
                from content.sms_text import measure

                validity = form.get("ValidityPeriod")
                message = Message(
                    sid="SM" + secrets.token_hex(16),
                    to=to,
                    sender=sender,
                    body=body,
                    status="queued",
                    created=datetime.now(UTC),
                    callback=form.get("StatusCallback"),
                    validity=int(validity) if validity else None,
                    segments=measure(body).segments,
                )
                with server.lock:
                    server.messages[message.sid] = message
                    server.creates.append(to)
                    server.attempts.append((to, time.time(), 201))
                self._reply(201, message.resource())
                server._queue_callbacks(message)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != f"{PREFIX}.json":
                    self._error(404, 20404, "The requested resource was not found")
                    return
                if not self._authorised():
                    return
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                after = _when(query.get("DateSent>"))
                before = _when(query.get("DateSent<"))
                with server.lock:
                    found = [
                        m
                        for m in server.messages.values()
                        if (not query.get("To") or m.to == query["To"])
                        and (after is None or m.created >= after)
                        and (before is None or m.created <= before)
                    ]
                found.sort(key=lambda m: m.created, reverse=True)
                self._reply(
                    200,
                    {
                        "messages": [m.resource() for m in found],
                        "end": max(0, len(found) - 1),
                        "first_page_uri": url.path + "?" + url.query,
                        "next_page_uri": None,
                        "page": 0,
                        "page_size": max(50, len(found)),
                        "previous_page_uri": None,
                        "start": 0,
                        "uri": url.path + "?" + url.query,
                    },
                )

        return Handler


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args()
    with TwilioServer(args.port) as server:
        server.behaviour.callbacks = not args.no_callbacks
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
