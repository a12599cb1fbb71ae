"""One CAP document in, from any way it came (HTTP, folder, feed): checked, logged by its
identifier, and, in auto mode, turned into an emergency call at once; otherwise it waits
for a person (`approve`, `reject`). Every document is logged, accepted or refused."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from coso.config import CapSenderSettings, Settings
from coso.db import write
from coso.errors import CosoError, InputError
from dispatcher.cap.areas import units_of_alert
from dispatcher.cap.decisions import CANCEL, NOTHING, AlertAction, emergency_call
from dispatcher.cap.desk import EmergencyDesk
from dispatcher.cap.document import Alert, identifier_of, read_alert
from dispatcher.cap.models import (
    FAILED,
    RECEIVING,
    REFUSED,
    REJECTED,
    REPEATED,
    WAITING,
    ReceivedAlert,
)

HTTP, FOLDER, FEED = "http", "folder", "feed"
SENT_OUTCOMES = ("declared", "updated")


@dataclass(frozen=True)
class Received:
    """What became of a document: its log row's id, outcome and reason."""

    id: int
    outcome: str
    reason: str
    identifier: str | None
    emergency_ref: str | None = None
    field: str | None = None
    value: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def sender_for_token(settings: Settings, token: str | None) -> CapSenderSettings | None:
    """The configured sender whose key this is (compared in constant time), or None."""
    if not token:
        return None
    found = None
    for sender in settings.cap.senders:  # every one compared: the time tells nothing
        if hmac.compare_digest(sender.token.encode(), token.encode()):
            found = sender
    return found


def sender_named(settings: Settings, sender: str) -> CapSenderSettings | None:
    for configured in settings.cap.senders:
        if configured.sender == sender:
            return configured
    return None


def refuse(
    engine: Engine,
    data: bytes,
    via: str,
    origin: str,
    now: datetime,
    error: InputError | str,
) -> Received:
    """Log a refused document (what could be read of its sender and identifier)."""
    sender, identifier = identifier_of(data)
    reason = str(error)
    row_id = _log(
        engine,
        {
            "received_at": now,
            "via": via,
            "origin": origin,
            "sender": sender,
            "identifier": identifier,
            "outcome": REFUSED,
            "reason": reason,
            "document": _document_text(data),
        },
    )
    field = error.field if isinstance(error, InputError) else None
    value = str(error.value) if isinstance(error, InputError) else None
    return Received(row_id, REFUSED, reason, identifier, field=field, value=value)


def receive(
    engine: Engine,
    settings: Settings,
    desk: EmergencyDesk,
    data: bytes,
    via: str,
    origin: str,
    now: datetime,
    authenticated_as: CapSenderSettings | None = None,
) -> Received:
    """Check, log and act on one document. `authenticated_as`: the sender whose key came
    with it (HTTP); from the folder or a feed the document's <sender> must be configured."""
    try:
        alert = read_alert(data, settings.cap.max_bytes)
    except InputError as exc:
        return refuse(engine, data, via, origin, now, exc)
    configured = sender_named(settings, alert.sender)
    if via == HTTP and (authenticated_as is None or authenticated_as.sender != alert.sender):
        return refuse(
            engine,
            data,
            via,
            origin,
            now,
            InputError("alert/sender", alert.sender, "không khớp với khóa của bên gửi"),
        )
    if configured is None:
        return refuse(
            engine,
            data,
            via,
            origin,
            now,
            InputError(
                "alert/sender", alert.sender, "bên gửi chưa được khai báo trong [cap.senders]"
            ),
        )
    base = _row_of(alert, data, via, origin, now)
    repeated = {"outcome": REPEATED, "reason": "đã nhận bản tin này trước đó: không làm lại"}
    if _seen_before(engine, alert):
        return _done(engine, base | repeated, alert)
    try:
        row_id = _log(engine, base | {"outcome": RECEIVING})
    except IntegrityError:  # the same message, taken a moment ago by another request
        return _done(engine, base | repeated, alert)
    try:
        changes = _decided(engine, settings, desk, alert, configured, now)
    except InputError as exc:
        changes = {"outcome": REFUSED, "reason": str(exc)}
        _change(engine, row_id, changes)
        return Received(
            row_id, REFUSED, str(exc), alert.identifier, field=exc.field, value=str(exc.value)
        )
    _change(engine, row_id, changes)
    return Received(
        row_id,
        changes["outcome"],
        changes["reason"],
        alert.identifier,
        changes.get("emergency_ref"),
    )


def _decided(
    engine: Engine,
    settings: Settings,
    desk: EmergencyDesk,
    alert: Alert,
    configured: CapSenderSettings,
    now: datetime,
) -> dict[str, Any]:
    """What becomes of an alert taken: the log row's changes (an InputError: refused)."""
    match = units_of_alert(engine, alert.areas, settings.cap.geocode_names)
    earlier, waiting = _earlier(engine, alert)
    call = emergency_call(alert, match, earlier, now)
    found = {"units": list(match.units), "text": call.text}
    if call.kind == NOTHING and call.outcome == REFUSED:
        raise InputError("area", _areas_text(alert), call.reason)
    if waiting and alert.msg_type in ("Update", "Cancel"):
        _supersede(engine, waiting, alert, now)
    if call.kind == NOTHING:
        return found | {"outcome": call.outcome, "reason": call.reason}
    info = alert.chosen_info()
    if call.kind != CANCEL and info is not None and info.severity not in configured.auto_severities:
        reason = f"chờ duyệt: mức {info.severity} không nằm trong auto_severities của bên gửi"
        return found | {"outcome": WAITING, "reason": reason}
    return found | _carried_out(desk, call, now, f"cap:{alert.sender}")


def _carried_out(
    desk: EmergencyDesk, call: AlertAction, now: datetime, actor: str
) -> dict[str, Any]:
    try:
        ref = desk.carry_out(call, now, actor)
    except (CosoError, RuntimeError) as exc:
        return {"outcome": FAILED, "reason": f"không thực hiện được: {exc}"}
    return {"outcome": call.outcome, "reason": call.reason, "emergency_ref": ref}


def approve(
    engine: Engine, settings: Settings, desk: EmergencyDesk, row_id: int, now: datetime, actor: str
) -> Received:
    """A person approves a waiting alert: it is read again and carried out as of now (one
    that expired meanwhile sends nothing)."""
    row = _waiting_row(engine, row_id)
    alert = read_alert(row.document.encode("utf-8"), settings.cap.max_bytes)
    match = units_of_alert(engine, alert.areas, settings.cap.geocode_names)
    earlier, _ = _earlier(engine, alert)
    call = emergency_call(alert, match, earlier, now)
    changes: dict[str, Any] = {"outcome": call.outcome, "reason": call.reason}
    if call.kind != NOTHING:
        changes = _carried_out(desk, call, now, actor)
    changes |= {"decided_by": actor, "decided_at": now}
    _change(engine, row_id, changes)
    return Received(
        row_id, changes["outcome"], changes["reason"], row.identifier, changes.get("emergency_ref")
    )


def reject(engine: Engine, row_id: int, now: datetime, actor: str, note: str = "") -> Received:
    row = _waiting_row(engine, row_id)
    reason = f"{actor} không duyệt" + (f": {note}" if note else "")
    _change(
        engine,
        row_id,
        {"outcome": REJECTED, "reason": reason, "decided_by": actor, "decided_at": now},
    )
    return Received(row_id, REJECTED, reason, row.identifier)


def waiting_alerts(engine: Engine) -> list[Any]:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(table).where(table.c.outcome == WAITING).order_by(table.c.received_at)
            ).all()
        )


def recent_alerts(engine: Engine, limit: int = 50) -> list[Any]:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id.desc()).limit(limit)).all())


def _waiting_row(engine: Engine, row_id: int) -> Any:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise InputError("alert", row_id, "không có cảnh báo này")
    if row.outcome != WAITING:
        raise InputError("alert", row_id, f"cảnh báo không còn chờ duyệt ({row.outcome})")
    return row


def _row_of(alert: Alert, data: bytes, via: str, origin: str, now: datetime) -> dict[str, Any]:
    info = alert.chosen_info()
    expires = alert.expires()
    return {
        "received_at": now,
        "via": via,
        "origin": origin,
        "sender": alert.sender,
        "identifier": alert.identifier,
        "sent": _sent_text(data) or alert.sent.isoformat(),
        "status": alert.status,
        "msg_type": alert.msg_type,
        "severity": info.severity if info else None,
        "headline": (info.headline or info.event) if info else "",
        "expires": expires.astimezone(UTC) if expires else None,
        "document": _document_text(data),
    }


def _sent_text(data: bytes) -> str | None:
    from lxml import etree

    from dispatcher.cap.document import CAP_NS

    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    sent = root.find(f"{{{CAP_NS}}}sent")
    return sent.text.strip() if sent is not None and sent.text else None


def _done(engine: Engine, row: dict[str, Any], alert: Alert) -> Received:
    row_id = _log(engine, row)
    return Received(
        row_id, row["outcome"], row.get("reason", ""), alert.identifier, row.get("emergency_ref")
    )


def _log(engine: Engine, row: dict[str, Any]) -> int:
    table = ReceivedAlert.__table__
    row = {"units": [], "headline": "", "text": "", "reason": "", "origin": ""} | row
    # PostgreSQL's text holds no NUL: a document full of them is kept with � in their place.
    row = {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in row.items()}
    with write(engine) as conn:
        return int(conn.execute(insert(table).values(**row).returning(table.c.id)).scalar_one())


def _change(engine: Engine, row_id: int, changes: dict[str, Any]) -> None:
    table = ReceivedAlert.__table__
    with write(engine) as conn:
        conn.execute(update(table).where(table.c.id == row_id).values(**changes))


def _seen_before(engine: Engine, alert: Alert) -> bool:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        return (
            conn.execute(
                select(table.c.id).where(
                    table.c.sender == alert.sender,
                    table.c.identifier == alert.identifier,
                    table.c.outcome != REFUSED,
                )
            ).first()
            is not None
        )


def _earlier(engine: Engine, alert: Alert) -> tuple[str | None, list[int]]:
    """The emergency declared from a message this one references (the newest), and the
    referenced messages still waiting for approval."""
    table = ReceivedAlert.__table__
    ref: str | None = None
    waiting: list[int] = []
    with engine.connect() as conn:
        for reference in alert.references:
            rows = conn.execute(
                select(table.c.id, table.c.emergency_ref, table.c.outcome)
                .where(
                    table.c.sender == reference.sender,
                    table.c.identifier == reference.identifier,
                )
                .order_by(table.c.id)
            ).all()
            for row_id, emergency_ref, outcome in rows:
                if emergency_ref and outcome in SENT_OUTCOMES:
                    ref = emergency_ref
                if outcome == WAITING:
                    waiting.append(row_id)
    return ref, waiting


def _supersede(engine: Engine, waiting: list[int], alert: Alert, now: datetime) -> None:
    word = "hủy" if alert.msg_type == "Cancel" else "thay bằng bản cập nhật"
    for row_id in waiting:
        _change(
            engine,
            row_id,
            {
                "outcome": REJECTED,
                "reason": f"{word} {alert.identifier} trước khi được duyệt",
                "decided_by": f"cap:{alert.sender}",
                "decided_at": now,
            },
        )


def _areas_text(alert: Alert) -> str:
    return "; ".join(a.description for a in alert.areas)


def _document_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
