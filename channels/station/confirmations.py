"""What an operator records about a station task — "Đã phát" (`confirmed`, at the time it
was really played) or "Không phát được" (`failed`, with a reason) — and a note on any
delivery of their commune. Outcomes go through the engine's one inbound path; each
function checks what it is given first and changes nothing when it refuses.

Who may record is the caller's to check (the console: an operator of the delivery's unit;
an SMS reply: from an operator's phone); the actor recorded is the operator's login.

A task nobody confirmed before its validity ended is `unconfirmed` (so are `missed` and
`expired` ones: coso was not running, yet a person may well have played it); the
operator's word is still taken for `late_confirmation` after the end of its validity, and
moves it on to `confirmed` or `failed`. The log keeps both entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.base import Outcome
from channels.host import ChannelHost
from channels.registry import settings_of
from channels.states import CONFIRMED, FAILED, SENT
from channels.station.channel import CHANNEL, open_until
from channels.station.reasons import OTHER, REASONS
from channels.station.tasks import CLOSED_UNHEARD, NOT_YET, operators_zone
from content.sms_text import khong_dau
from coso.clock import as_utc, zone
from coso.durations import parse_duration
from coso.errors import InputError
from coso.names import nfc, text_problem

# Why an item could not be played: code → what people read. The code is kept in the log.
MAX_NOTE = 500
# Words shown for the states an operator meets in refusals.
STATE_WORDS = {
    CONFIRMED: "đã phát (đã xác nhận)",
    FAILED: "không phát được",
    SENT: "chờ xác nhận",
    "unconfirmed": "không được xác nhận",
    "missed": "bị lỡ (coso không chạy lúc đến giờ)",
    "expired": "hết hạn",
}
EVENT_CONFIRMED = "confirmed"
EVENT_NOT_PLAYED = "not_played"
EVENT_NOTE = "note"


@dataclass(frozen=True)
class Recorded:
    """What was recorded: the delivery's new state and the entry's time."""

    delivery_id: int
    state: str
    at: datetime
    title: str = ""


def confirm(
    host: ChannelHost,
    delivery_id: int,
    actor: str,
    played_at: datetime | None = None,
    *,
    via: str = "",
) -> Recorded:
    """ "Đã phát": the station delivery becomes `confirmed` by `actor`, at `played_at` (now by
    default; not ahead of now by more than channels.station.clock_skew, nor before the slot
    by more than early_margin)."""
    now = host.clock.now()
    row, cfg = _open_task(host, delivery_id, actor, now)
    at = as_utc(played_at) if played_at is not None else now
    tz = operators_zone(host)
    if at > now + parse_duration(cfg.clock_skew):
        raise InputError(
            "played_at",
            _local(at, tz),
            f"là thời điểm trong tương lai (bây giờ là {_local(now, tz)})",
        )
    slot = as_utc(row.scheduled_for)
    if at < slot - parse_duration(cfg.early_margin):
        raise InputError(
            "played_at",
            _local(at, tz),
            f"sớm hơn giờ phát {_local(slot, tz)} quá {cfg.early_margin}",
        )
    detail = f"người trực xác nhận lúc {_local(now, tz)}" + (f" qua {via}" if via else "")
    outcome = Outcome(
        delivery_id,
        CONFIRMED,
        EVENT_CONFIRMED,
        at,
        actor,
        detail=detail,
        late_after=parse_duration(cfg.late_after),
        inbound=True,
    )
    return _receive(host, outcome)


def could_not_play(
    host: ChannelHost,
    delivery_id: int,
    actor: str,
    reason: str,
    note: str = "",
    *,
    via: str = "",
) -> Recorded:
    """ "Không phát được": the station delivery becomes `failed` by `actor`, with a reason
    from REASONS (its code or its words) and a note (required for "khác")."""
    now = host.clock.now()
    code = reason_code(reason)
    note = _note(note, "note", required="lý do 'khác' cần ghi rõ lý do" if code == OTHER else "")
    _, _ = _open_task(host, delivery_id, actor, now)
    error = REASONS[code] + (f": {note}" if note else "")
    detail = f"lý do: {code}" + (f"; qua {via}" if via else "")
    outcome = Outcome(
        delivery_id, FAILED, EVENT_NOT_PLAYED, now, actor, error=error, detail=detail, inbound=True
    )
    return _receive(host, outcome)


def add_note(host: ChannelHost, delivery_id: int, actor: str, text: str) -> Recorded:
    """An operator's note on any delivery (any channel): an activity-log entry that leaves
    its state as it is."""
    actor = _actor(actor)
    note = _note(text, "text", required="ghi chú không được để trống")
    row = host.delivery(delivery_id)
    if row is None:
        raise InputError("delivery", delivery_id, "không có lần gửi này")
    now = host.clock.now()
    if not host.note_delivery(delivery_id, now, EVENT_NOTE, actor, note):
        raise InputError("delivery", delivery_id, "không có lần gửi này")
    return Recorded(delivery_id, row.state, now)


def reason_code(reason: str) -> str:
    """A reason's code, from its code or its words with or without diacritics ("Mất điện",
    "mat dien", "mat_dien"); InputError listing them when it is none."""
    folded = _fold(reason)
    for code, label in REASONS.items():
        if folded in (code, _fold(label), code.replace("_", " ")):
            return code
    listed = ", ".join(f"{c} ({label})" for c, label in REASONS.items())
    raise InputError("reason", reason, f"không có lý do này; chọn một trong: {listed}")


def reason_in(text: str) -> tuple[str, str]:
    """(reason code, the rest) when free text starts with a reason's words ("mat dien
    tu 5h"), else ("khac", the text)."""
    words = _fold(text).split()
    for code, label in REASONS.items():
        if code == OTHER:
            continue
        said = _fold(label).split()
        for form in (said, said[:-1] if said[-1] == "xau" else said):
            if form and words[: len(form)] == form:
                rest = " ".join(nfc(text).split()[len(form) :])
                return code, rest
    return OTHER, text


def _open_task(host: ChannelHost, delivery_id: int, actor: str, now: datetime) -> tuple[Any, Any]:
    """The station delivery, when the operator's word may be recorded for it now."""
    _actor(actor)
    row = host.delivery(delivery_id)
    if row is None:
        raise InputError("delivery", delivery_id, "không có lần gửi này")
    if row.channel != CHANNEL:
        raise InputError(
            "delivery",
            delivery_id,
            f"là lần gửi qua kênh {row.channel}, không phải việc của đài truyền thanh: "
            "chỉ ghi chú được, không xác nhận được",
        )
    cfg = settings_of(host.settings, CHANNEL)
    tz = operators_zone(host)
    word = STATE_WORDS.get(row.state, row.state)
    if row.state in (CONFIRMED, FAILED):
        raise InputError(
            "delivery", delivery_id, f"đã được ghi nhận là '{word}': không ghi nhận lại"
        )
    if row.state in NOT_YET:
        raise InputError(
            "delivery",
            delivery_id,
            f"chưa đến lượt (giờ phát {_local(as_utc(row.scheduled_for), tz)}): chưa xác nhận được",
        )
    if row.state in CLOSED_UNHEARD:
        until = open_until(
            as_utc(row.scheduled_for),
            as_utc(row.expires_at) if row.expires_at else None,
            parse_duration(cfg.late_confirmation),
        )
        if now > until:
            raise InputError(
                "delivery",
                delivery_id,
                f"là '{word}' và đã quá hạn xác nhận muộn ({_local(until, tz)})",
            )
    elif row.state != SENT:
        raise InputError(
            "delivery", delivery_id, f"đang ở trạng thái '{word}': không xác nhận được"
        )
    return row, cfg


def _receive(host: ChannelHost, outcome: Outcome) -> Recorded:
    received = host.receive([outcome])
    if not received.applied:  # another tap (or the upkeep) got there first
        row = host.delivery(outcome.delivery_id or 0)
        word = STATE_WORDS.get(row.state, row.state) if row else "?"
        raise InputError(
            "delivery", outcome.delivery_id, f"vừa được ghi nhận là '{word}': không ghi nhận lại"
        )
    return Recorded(outcome.delivery_id or 0, outcome.state, outcome.at)


def _actor(actor: str) -> str:
    actor = nfc(actor or "").strip()
    if not actor:
        raise InputError("actor", actor, "cần tên đăng nhập của người ghi nhận")
    if len(actor) > 100 or text_problem(actor) or "\n" in actor:
        raise InputError("actor", actor[:100], "không phải tên đăng nhập")
    return actor


def _note(text: str, field: str, *, required: str = "") -> str:
    """The note, trimmed; `required`: why it may not be empty."""
    note = nfc(text or "").strip()
    if required and not note:
        raise InputError(field, text, required)
    if len(note) > MAX_NOTE:
        raise InputError(field, note[:60] + "…", f"dài quá {MAX_NOTE} ký tự")
    problem = text_problem(note)
    if problem:
        raise InputError(field, note[:60], problem)
    return note


def _fold(text: str) -> str:
    return " ".join(khong_dau(nfc(text)).lower().replace("_", " ").split())


def _local(when: datetime, tz: str) -> str:
    return f"{as_utc(when).astimezone(zone(tz)):%H:%M %d/%m/%Y}"
