"""Operators' answers by SMS, offered by the SMS webhook once its signature is checked:
`XN 4821` ("xác nhận": played, now) and `KP 4821 mat dien` ("không phát": could not play,
the reason from the text when it names one, else "khác" with the text as the note), in
any case, with or without diacritics. Taken only from the phone of an operator of the
task's commune, as that operator. Anything refused — a code that names no open task, a
phone that is not the commune's operator's, a task not due or already answered — is
logged and answered with the reason, and changes nothing."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.base import Outbound
from channels.host import ChannelHost
from channels.registry import settings_of
from channels.states import STATES
from channels.station.channel import CHANNEL
from channels.station.codes import task_of
from channels.station.confirmations import (
    REASONS,
    confirm,
    could_not_play,
    reason_in,
)
from channels.station.tasks import operators_zone
from content.models import ContentItem
from content.sms_text import khong_dau
from coso.clock import as_utc, zone
from coso.errors import InputError
from coso.names import nfc
from coso.users import operators_of

log = logging.getLogger(__name__)
CONFIRM = "xn"  # else "kp": could not play
# The verb alone, or followed by its code ("XN 4821", "xn4821", "KP: 4821 mat dien").
COMMAND = re.compile(r"(xn|kp)(?![a-z])[\s:.,#-]*(\d*)(.*)", re.DOTALL)
HOW = "Cú pháp: XN <mã> khi đã phát; KP <mã> <lý do> khi không phát được."


@dataclass(frozen=True)
class Command:
    verb: str  # xn | kp
    code: str
    rest: str  # what follows the code, as written


def read_command(body: str) -> Command | None:
    """The operator's command in a text, or None when the text is not one."""
    text = nfc(body).strip()
    folded = khong_dau(text).lower()
    found = COMMAND.fullmatch(folded)
    if found is None:
        return None
    verb, code, _ = found.groups()
    rest = ""
    if code:
        # The note as written (with its diacritics): what follows the code's digits.
        rest = text.split(code, 1)[1] if code in text else found.group(3)
    return Command(verb, code, rest.strip(" \t\r\n:.,-"))


def answer_text(host: ChannelHost, sender: str, body: str, at: datetime) -> str | None:
    """The `inbound_text` hook: the reply to an operator's command, or None for a text
    that is not one (left to the SMS channel: STOP …)."""
    command = read_command(body)
    if command is None:
        return None
    cfg = settings_of(host.settings, CHANNEL)
    reply = _answer(host, sender, command, at)
    return khong_dau(reply) if cfg.khong_dau else reply


def _answer(host: ChannelHost, sender: str, command: Command, at: datetime) -> str:
    said = f"{command.verb.upper()} {command.code}".strip()
    if not command.code:
        return _refuse(sender, said, "no code", f"Tin nhắn thiếu mã. {HOW}")
    task = task_of(host.engine, command.code, at)
    if task is None:
        return _refuse(
            sender,
            said,
            "no open task has this code",
            f"Mã {command.code} không đúng hoặc đã hết hạn; chưa ghi nhận gì. "
            "Xem lại mã trong tin nhắn lịch phát.",
        )
    operators = operators_of(host.engine, task.unit_code) if task.unit_code else []
    operator = next((u for u in operators if u.phone == sender), None)
    if operator is None:
        return _refuse(
            sender,
            said,
            f"not the phone of an operator of unit {task.unit_code}",
            f"Số điện thoại này không phải của người trực đài có mục mã {command.code}; "
            "chưa ghi nhận gì.",
        )
    tz = operators_zone(host)
    slot = as_utc(task.scheduled_for)
    rows = [
        r
        for r in host.deliveries(
            CHANNEL,
            STATES,
            endpoint_ids=[task.endpoint_id],
            scheduled_from=slot,
            scheduled_before=slot + timedelta(microseconds=1),
        )
        if r.schedule_id == task.schedule_id
    ]
    if not rows:
        return _refuse(
            sender,
            said,
            "its slot has not fired yet",
            f"Mục mã {command.code} chưa đến giờ phát ({_local(slot, tz)}); "
            "chưa ghi nhận gì. Khi đã phát, hãy nhắn lại.",
        )
    delivery = rows[0]
    title = _title(host, delivery)
    try:
        if command.verb == CONFIRM:
            confirm(host, delivery.id, operator.login, via="SMS")
            done = f"Đã ghi nhận: ĐÃ PHÁT '{title}' ({_local(slot, tz)}). Cảm ơn!"
        else:
            if not command.rest:
                return _refuse(
                    sender,
                    said,
                    "no reason given",
                    f"Hãy nhắn kèm lý do, ví dụ: KP {command.code} mat dien. Chưa ghi nhận gì.",
                )
            reason, note = reason_in(command.rest)
            could_not_play(host, delivery.id, operator.login, reason, note, via="SMS")
            done = f"Đã ghi nhận: KHÔNG PHÁT ĐƯỢC '{title}' ({REASONS[reason]}). Cảm ơn!"
    except InputError as exc:
        return _refuse(sender, said, str(exc), f"Chưa ghi nhận: {exc.reason}.")
    log.info("%s from %s (%s) recorded for delivery %s", said, operator.login, sender, delivery.id)
    return done


def _refuse(sender: str, said: str, why: str, reply: str) -> str:
    log.warning("station: refused %r from %s: %s", said, sender[:20], why)
    return reply


def _title(host: ChannelHost, delivery: Any) -> str:
    """The item's title as the station has it (rendered), shortened for a text."""
    built = host.messages([delivery])
    if built and isinstance(built[0], Outbound):
        title = built[0].title
    else:
        C = ContentItem.__table__
        with host.engine.connect() as conn:
            title = conn.scalar(select(C.c.title).where(C.c.id == delivery.content_id)) or ""
    return title if len(title) <= 50 else title[:49] + "…"


def _local(when: datetime, tz: str) -> str:
    return f"{as_utc(when).astimezone(zone(tz)):%H:%M %d/%m}"
