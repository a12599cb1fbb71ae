"""Twilio status callbacks and inbound messages, after their signature was checked.

Callbacks arrive out of order and more than once: a status moves a delivery forward only
(`sent` → `delivered` / `undelivered` / `failed`), through the engine's one inbound path,
which also keeps those that overtake their message and logs one that arrives after a later
one. Callbacks that arrive together are applied in one transaction (group commit): each
request is answered once its change is committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.base import Outcome
from channels.host import ChannelHost
from channels.registry import offer_text
from channels.sms.channel import UNSUBSCRIBED, gateway_error
from channels.sms.phones import PhoneError, to_e164
from channels.sms.recipients import add_opt_out, is_stop_request, record_opt_out
from channels.states import DELIVERED, FAILED, SENT
from coso.db import write
from coso.loops import call_per_loop, settle

log = logging.getLogger(__name__)
ACTOR = "gateway"
# Twilio's MessageStatus → (delivery state, log event); None: a step before `sent`.
STATUSES: dict[str, tuple[str, str] | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": (SENT, "sent"),
    "delivered": (DELIVERED, "delivered"),
    "read": (DELIVERED, "delivered"),
    "undelivered": (FAILED, "undelivered"),
    "failed": (FAILED, "failed"),
    "canceled": (FAILED, "canceled"),
}


class CallbackError(ValueError):
    """A callback coso cannot read (missing MessageSid or an unknown MessageStatus)."""


@dataclass(frozen=True)
class StatusCallback:
    sid: str
    status: str
    error_code: str | None
    to: str | None
    at: datetime
    error_message: str | None = None  # the gateway's own words, when it sends them

    @classmethod
    def from_form(cls, form: Mapping[str, str], at: datetime) -> StatusCallback:
        sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not sid:
            raise CallbackError("MessageSid is missing")
        if status not in STATUSES:
            raise CallbackError(f"MessageStatus = {status!r}: not one of {sorted(STATUSES)}")
        code = (form.get("ErrorCode") or "").strip() or None
        said = (form.get("ErrorMessage") or "").strip()[:500] or None
        return cls(sid, status, code, form.get("To"), at, said)

    def error(self) -> str | None:
        return gateway_error(self.error_code, self.error_message)


def gateway_state(status: str) -> str:
    """The delivery state a gateway status stands for (steps before `sent` count as sent)."""
    step = STATUSES.get(status)
    return step[0] if step else SENT


def callback_outcomes(callbacks: Sequence[StatusCallback]) -> list[Outcome]:
    """Outcomes by provider id (the message's sid); statuses before `sent` say nothing the
    delivery does not know already."""
    outcomes = []
    for c in callbacks:
        step = STATUSES[c.status]
        if step is None:
            continue
        state, event = step
        outcomes.append(
            Outcome(
                None, state, event, c.at, ACTOR, provider_id=c.sid, error=c.error(), inbound=True
            )
        )
    return outcomes


def apply_callbacks(host: ChannelHost, callbacks: Sequence[StatusCallback]) -> int:
    """Apply status callbacks in one transaction; returns how many moved a delivery. Error
    21610 (the recipient unsubscribed at the gateway) is an opt-out for every later
    non-emergency message."""
    with write(host.engine) as conn:
        received = host.receive_in(conn, callback_outcomes(callbacks))
        ours = {o.provider_id for o in received.applied + received.stale}
        for c in callbacks:
            if c.error_code == str(UNSUBSCRIBED) and c.sid in ours and c.to:
                record_opt_out(conn, c.to, c.at, "gateway", f"error {UNSUBSCRIBED} on {c.sid}")
    return len(received.applied)


def offer_inbound(host: ChannelHost, form: Mapping[str, str], at: datetime) -> str | None:
    """An inbound SMS offered to every channel that reads texts (`inbound_text`), its sender
    in E.164 when it is a phone number; their answer, or None when none took it."""
    sender = (form.get("From") or "").strip()
    with contextlib.suppress(PhoneError):  # a short code or a name: judged as it came
        sender = to_e164(sender)
    return offer_text(host, sender, form.get("Body") or "", at)


def record_inbound(engine: Any, form: Mapping[str, str], at: datetime) -> bool:
    """An inbound SMS: 'STOP' / 'TU CHOI' opts its sender out. Returns True when it did."""
    body = form.get("Body") or ""
    sender = form.get("From") or ""
    if not is_stop_request(body):
        log.info("inbound SMS from %s ignored (not an opt-out request)", sender)
        return False
    try:
        phone = to_e164(sender)
    except PhoneError as exc:  # nobody coso messages: there is no one to stop sending to
        log.warning("inbound opt-out from %r ignored: not a phone number (%s)", sender[:40], exc)
        return False
    add_opt_out(engine, phone, at, "inbound", f"replied {body.strip()[:40]!r}")
    log.info("%s opted out of SMS (%r)", phone, body.strip()[:40])
    return True


Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]  # a request awaiting commit


class CallbackBatcher:
    """Group commit for callbacks: requests that arrive while a transaction runs are applied
    together in the next one, and each is answered after its commit. The requests waiting
    on one event loop are woken together, once per batch (waking a loop from another
    thread is a system call)."""

    def __init__(self, host: ChannelHost, max_batch: int = 2000) -> None:
        self.host, self.max_batch = host, max_batch
        self._queue: queue.Queue[tuple[StatusCallback, Waiter]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def apply(self, callback: StatusCallback, timeout: float = 30.0) -> None:
        """Queue `callback` with whatever else is waiting; return once it is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._ensure_thread()
        self._queue.put((callback, (loop, done)))
        async with asyncio.timeout(timeout):
            await done

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sms-status", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < self.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: Exception | None = None
            try:
                apply_callbacks(self.host, [c for c, _ in items])
            except Exception as exc:  # answered with an error: the gateway retries
                log.exception("applying %d status callback(s) failed", len(items))
                error = exc
            call_per_loop(((loop, (done, error)) for _, (loop, done) in items), settle)
