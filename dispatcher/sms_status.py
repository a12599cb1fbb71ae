"""Twilio status callbacks and inbound messages, after their signature was checked.

Callbacks arrive out of order and more than once: a status moves a delivery forward only
(`sent` → `delivered` / `undelivered` / `failed`); one that would move it back changes
nothing but is still recorded. Callbacks that arrive together are applied in one
transaction (group commit): each request is answered once its change is committed."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, text
from sqlmodel import Field, SQLModel

from channels.base import Outcome
from channels.phones import PhoneError, to_e164
from channels.recipients import add_opt_out, is_stop_request, record_opt_out
from channels.sms import UNSUBSCRIBED, gateway_error
from coso.clock import Clock, as_utc
from coso.db import chunks, write
from dispatcher.models import Delivery
from dispatcher.states import DELIVERED, FAILED, SENT
from dispatcher.transitions import LOG_SOURCE, append_log, apply_outcomes, log_rows

log = logging.getLogger(__name__)
D = Delivery.__table__
ACTOR = "gateway"
SID_LOCK = 0x636F736F_534D53  # advisory lock key ("coso" "SMS"); the timer holds "coso"
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

    @classmethod
    def from_form(cls, form: Mapping[str, str], at: datetime) -> StatusCallback:
        sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not sid:
            raise CallbackError("MessageSid is missing")
        if status not in STATUSES:
            raise CallbackError(f"MessageStatus = {status!r}: not one of {sorted(STATUSES)}")
        code = (form.get("ErrorCode") or "").strip() or None
        return cls(sid, status, code, form.get("To"), at)

    def error(self) -> str | None:
        return gateway_error(self.error_code)


def gateway_state(status: str) -> str:
    """The delivery state a gateway status stands for (steps before `sent` count as sent)."""
    step = STATUSES.get(status)
    return step[0] if step else SENT


class SmsEarlyStatus(SQLModel, table=True):
    """A callback that overtook its message: the gateway answered the create request and
    reported on the message before the sender recorded its sid. Applied when it does."""

    __tablename__ = "sms_early_status"

    id: int | None = Field(default=None, primary_key=True)
    sid: str = Field(index=True)
    status: str
    error_code: str | None = None
    to: str | None = None
    at: datetime


EARLY = SmsEarlyStatus.__table__


def serialise(conn: Any) -> None:
    """Callbacks and the sender's record of sids take turns (PostgreSQL; SQLite has one
    writer anyway), so a callback is never parked just as its sid is being recorded."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SID_LOCK})


def apply_callbacks(engine: Engine, callbacks: Sequence[StatusCallback]) -> int:
    """Apply status callbacks in one transaction; returns how many moved a delivery."""
    with write(engine) as conn:
        serialise(conn)
        return apply_in(conn, callbacks, park_unknown=True)


def apply_early(conn: Any, sids: Sequence[str]) -> int:
    """After the sender recorded `sids`: apply the callbacks that arrived before. The
    transaction holds the lock of `serialise` already."""
    if not sids:
        return 0
    waiting = []
    for batch in chunks(list(sids), 5000):
        waiting += conn.execute(
            select(EARLY).where(EARLY.c.sid.in_(batch)).order_by(EARLY.c.id)
        ).all()
    if not waiting:
        return 0
    conn.execute(delete(EARLY).where(EARLY.c.id.in_([w.id for w in waiting])))
    callbacks = [StatusCallback(w.sid, w.status, w.error_code, w.to, as_utc(w.at)) for w in waiting]
    return apply_in(conn, callbacks, park_unknown=False)


def apply_in(conn: Any, callbacks: Sequence[StatusCallback], park_unknown: bool) -> int:
    sids = {c.sid for c in callbacks}
    rows = {
        r.provider_id: r
        for r in conn.execute(select(*LOG_SOURCE, D.c.provider_id).where(D.c.provider_id.in_(sids)))
    }
    outcomes: list[Outcome] = []
    by_outcome: dict[int, StatusCallback] = {}
    notes = []
    early = []
    for c in callbacks:
        row = rows.get(c.sid)
        if row is None:
            early.append(
                {
                    "sid": c.sid,
                    "status": c.status,
                    "error_code": c.error_code,
                    "to": c.to,
                    "at": c.at,
                }
            )
            continue
        step = STATUSES[c.status]
        if step is None:
            notes.append((row, c, f"gateway status {c.status}"))
            continue
        state, event = step
        outcome = Outcome(row.id, state, event, c.at, ACTOR, provider_id=c.sid, error=c.error())
        by_outcome[id(outcome)] = c
        outcomes.append(outcome)
    if early and park_unknown:
        # The sender may not have recorded these sids yet; any other sid waits forever
        # and is harmless (`coso sms reconcile` does not need it).
        conn.execute(insert(EARLY), early)
    elif early:
        log.warning("%d status callback(s) about messages coso did not send", len(early))
    applied, refused = apply_outcomes(conn, outcomes)
    current = {}
    if refused:
        current = dict(
            conn.execute(
                select(D.c.id, D.c.state).where(D.c.id.in_({o.delivery_id for o in refused}))
            ).all()
        )
    for o in refused:
        c = by_outcome[id(o)]
        notes.append(
            (
                rows[c.sid],
                c,
                f"gateway status {c.status} arrived late; the delivery stays "
                f"{current.get(o.delivery_id, '?')}",
            )
        )
    entries = []
    for row, c, detail in notes:
        entries += log_rows([row], at=c.at, event="status", state=None, actor=ACTOR, detail=detail)
    append_log(conn, entries)
    for c in callbacks:
        if c.error_code == str(UNSUBSCRIBED) and c.sid in rows and c.to:
            record_opt_out(conn, c.to, c.at, "gateway", f"error {UNSUBSCRIBED} on {c.sid}")
    return len(applied)


def record_inbound(engine: Engine, form: Mapping[str, str], at: datetime) -> bool:
    """An inbound SMS: 'STOP' / 'TU CHOI' opts its sender out. Returns True when it did."""
    body = form.get("Body") or ""
    sender = form.get("From") or ""
    if not is_stop_request(body):
        log.info("inbound SMS from %s ignored (not an opt-out request)", sender)
        return False
    try:
        phone = to_e164(sender)
    except PhoneError:
        phone = sender.strip()
    if not phone:
        return False
    add_opt_out(engine, phone, at, "inbound", f"replied {body.strip()[:40]!r}")
    log.info("%s opted out of SMS (%r)", phone, body.strip()[:40])
    return True


class CallbackBatcher:
    """Group commit for callbacks: requests that arrive while a transaction runs are applied
    together in the next one, and each is answered after its commit."""

    def __init__(self, engine: Engine, clock: Clock, max_batch: int = 2000) -> None:
        self.engine, self.clock, self.max_batch = engine, clock, max_batch
        self._queue: queue.Queue[tuple[StatusCallback, Future[None]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, callback: StatusCallback) -> Future[None]:
        """Queue `callback` to be applied (with whatever else is waiting); the future is
        done once it is committed."""
        self._ensure_thread()
        done: Future[None] = Future()
        self._queue.put((callback, done))
        return done

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
            try:
                apply_callbacks(self.engine, [c for c, _ in items])
            except Exception as exc:  # answered with an error: the gateway retries
                log.exception("applying %d status callback(s) failed", len(items))
                for _, done in items:
                    done.set_exception(exc)
                continue
            for _, done in items:
                done.set_result(None)
