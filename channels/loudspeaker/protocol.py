"""The player protocol, version 1 (docs/player-protocol.md): topics and JSON payloads shared
by coso and the reference player. Pure data in, data out: no network here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

VERSION = 1
PLAYER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# What coso reads from players is bounded before it is parsed or stored.
MAX_DEPTH = 16  # JSON nesting: an event batch is 3 deep, a sync command 4
MAX_ID = 2**31 - 1  # delivery and schedule ids are PostgreSQL integers
MAX_TIME_TEXT = 40  # "2021-05-02T23:00:00.000000+07:00" is 32
MAX_TEXT = 500  # a failure reason, as kept
SLOT = re.compile(r"^([0-9]{1,10})@([0-9T:.Z+-]{1,40})$")  # <schedule id>@<time>
MAX_SLOT = 64

# Commands (coso → player)
PLAY, INTERRUPT, STOP, SET_VOLUME, SYNC = "play", "interrupt", "stop", "set_volume", "sync"
COMMANDS = (PLAY, INTERRUPT, STOP, SET_VOLUME, SYNC)
# Events (player → coso)
RECEIVED, DOWNLOADED, STARTED, FINISHED, FAILED, EXPIRED = (
    "received",
    "downloaded",
    "started",
    "finished",
    "failed",
    "expired",
)
EVENTS = (RECEIVED, DOWNLOADED, STARTED, FINISHED, FAILED, EXPIRED)
AS_RUN = "as_run"  # a batch of events kept while offline
BATCH = "events"  # several live events at once (e.g. received and finished for a repeat)
ONLINE, OFFLINE = "online", "offline"


class ProtocolError(ValueError):
    """A payload that does not follow the protocol; the message says which field."""


def check_player_id(player: str) -> str:
    if not isinstance(player, str) or not PLAYER_ID.fullmatch(player):
        raise ProtocolError(
            f"player id {player!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it is part of MQTT topics)"
        )
    return player


@dataclass(frozen=True)
class Topics:
    prefix: str = "coso/v1"

    def commands(self, player: str) -> str:
        return f"{self.prefix}/players/{player}/cmd"

    def events(self, player: str) -> str:
        return f"{self.prefix}/players/{player}/events"

    def status(self, player: str) -> str:
        return f"{self.prefix}/players/{player}/status"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}/players/+/events"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/players/+/status"

    def parse(self, topic: str) -> tuple[str, str]:
        """(player id, "cmd" | "events" | "status") of a topic under the prefix."""
        head = f"{self.prefix}/players/"
        if not topic.startswith(head):
            raise ProtocolError(f"topic {topic!r} is not under {head!r}")
        player, _, kind = topic[len(head) :].partition("/")
        if kind not in ("cmd", "events", "status"):
            raise ProtocolError(f"topic {topic!r}: unknown kind {kind!r}")
        return check_player_id(player), kind


@lru_cache(maxsize=4096)  # a batch of commands shares its few times
def stamp(when: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, as every time in the protocol is written."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown(value: object, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def parse_time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TIME_TEXT:
        raise ProtocolError(f"{field} = {shown(value)}: not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProtocolError(f"{field} = {value!r}: not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise ProtocolError(f"{field} = {value!r}: has no zone (write it in UTC with Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 east of UTC, year 9999 west of it
        raise ProtocolError(f"{field} = {value!r}: out of range once in UTC") from exc


def parse_slot(value: object, field: str = "slot") -> tuple[int, datetime]:
    """`12@2021-05-03T06:00:00Z` → (12, that time); ProtocolError naming it otherwise."""
    match = SLOT.match(value) if isinstance(value, str) and len(value) <= MAX_SLOT else None
    if match is None:
        raise ProtocolError(f"{field} = {shown(value)}: not <schedule id>@<UTC time>")
    schedule_id = int(match[1])
    if not 1 <= schedule_id <= MAX_ID:
        raise ProtocolError(f"{field} = {value!r}: schedule id out of range")
    when = parse_time(match[2], field)
    assert when is not None
    return schedule_id, when


def read_id(value: object, field: str) -> int | None:
    """A delivery id: an integer from 1 to MAX_ID (not true or 1.0), or None."""
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise ProtocolError(f"{field} = {shown(value)}: not a delivery id (1 to {MAX_ID})")
    return value


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Text from a player as coso keeps it: at most `limit` characters, no control
    characters (PostgreSQL refuses NUL), no lone surrogates (not UTF-8)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = _CONTROL.sub("", text[: limit * 2])
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def slot_key(schedule_id: int, slot: datetime) -> str:
    """One programme slot: the same on coso and on the player, whatever the delivery id."""
    return f"{schedule_id}@{stamp(slot)}"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, **payload}, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes, max_size: int | None = None) -> dict[str, Any]:
    """A payload's JSON object, refused before parsing when larger than `max_size` bytes or
    nested deeper than MAX_DEPTH (which would exhaust the parser's recursion)."""
    if max_size is not None and len(raw) > max_size:
        raise ProtocolError(f"payload of {len(raw)} bytes: more than the {max_size} allowed")
    if too_deep(raw):
        raise ProtocolError(f"payload nested more than {MAX_DEPTH} deep: {raw[:60]!r}")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"payload is not JSON: {raw[:60]!r}") from exc
    if not isinstance(payload, dict):
        raise ProtocolError("payload is not a JSON object")
    if payload.get("v") != VERSION:
        raise ProtocolError(f"v = {payload.get('v')!r}: this side speaks version {VERSION}")
    return payload


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(rb"[][{}]")


def too_deep(raw: bytes) -> bool:
    """Do the arrays and objects of a JSON text nest more than MAX_DEPTH deep (brackets in
    strings aside)? Told without parsing it."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False  # too few brackets: the usual case, at the cost of two counts
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", raw)):
        depth += 1 if match[0] in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def play_command(
    *,
    delivery_id: int,
    media: dict[str, Any],
    not_before: datetime,
    expires_at: datetime | None,
    priority: str,
    volume: int,
    title: str,
    slot: str | None,
    sent_at: datetime,
    order: int = 0,
) -> dict[str, Any]:
    """`play`, or `interrupt` for an emergency: stop whatever plays and play this now."""
    return {
        "type": INTERRUPT if priority == "emergency" else PLAY,
        "id": f"d{delivery_id}",
        "delivery_id": delivery_id,
        "slot": slot,
        "media": media,
        "not_before": stamp(not_before),
        "expires_at": stamp(expires_at),
        "priority": priority,
        "order": order,
        "volume": volume,
        "title": title,
        "sent_at": stamp(sent_at),
    }


def event(
    kind: str,
    *,
    at: datetime,
    delivery_id: int | None = None,
    slot: str | None = None,
    started_at: datetime | None = None,
    reason: str | None = None,
    seq: int = 0,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": kind, "at": stamp(at), "seq": seq}
    if delivery_id is not None:
        payload["delivery_id"] = delivery_id
    if slot is not None:
        payload["slot"] = slot
    if started_at is not None:
        payload["started_at"] = stamp(started_at)
    if reason is not None:
        payload["reason"] = reason
    return payload


@dataclass(frozen=True)
class PlayerEvent:
    """One event as coso reads it, checked."""

    kind: str
    at: datetime
    delivery_id: int | None
    slot: str | None
    started_at: datetime | None
    reason: str | None
    as_run: bool = False
    clock_note: str | None = None  # the player's clock was off: what it said


def read_events(payload: dict[str, Any]) -> tuple[list[PlayerEvent], list[ProtocolError]]:
    """The events of one message (a single event, or an `events` / `as_run` batch), and
    why each record that is not an event was refused: one bad record refuses only itself."""
    kind = payload.get("type")
    if kind not in (AS_RUN, BATCH):
        try:
            return [_read_event(payload, as_run=False)], []
        except ProtocolError as exc:
            return [], [exc]
    records = payload.get("records")
    if not isinstance(records, list):
        return [], [ProtocolError(f"{kind}: records must be a list of events")]
    events: list[PlayerEvent] = []
    errors: list[ProtocolError] = []
    for n, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise ProtocolError(f"{shown(record)}: not an event")
            events.append(_read_event({"v": VERSION, **record}, as_run=kind == AS_RUN))
        except ProtocolError as exc:
            errors.append(ProtocolError(f"{kind} record {n + 1}: {exc}"))
    return events, errors


def _read_event(payload: dict[str, Any], *, as_run: bool) -> PlayerEvent:
    kind = payload.get("type")
    if kind not in EVENTS:
        raise ProtocolError(f"type = {shown(kind)}: not one of {list(EVENTS)}")
    delivery_id = read_id(payload.get("delivery_id"), "delivery_id")
    slot = payload.get("slot")
    if slot is not None:
        parse_slot(slot)
    elif delivery_id is None:
        raise ProtocolError(f"{kind}: names neither a delivery_id nor a slot")
    at = parse_time(payload.get("at"), "at")
    if at is None:
        raise ProtocolError(f"{kind}: at is missing")
    reason = payload.get("reason")
    return PlayerEvent(
        kind=kind,
        at=at,
        delivery_id=delivery_id,
        slot=slot,
        started_at=parse_time(payload.get("started_at"), "started_at"),
        reason=clean_text(reason) if reason is not None else None,
        as_run=as_run,
    )


def within_clock(
    ev: PlayerEvent, not_before: datetime | None, received: datetime, skew: timedelta
) -> PlayerEvent:
    """The event with the times it reports kept between its command's `not_before` (when
    known) and the moment coso `received` it, give or take `skew`: a time outside is moved
    to the nearer of the two, and `clock_note` says what the player's clock said. An event
    about a command not due until after it was received is refused."""
    low = not_before - skew if not_before is not None else None
    high = received + skew
    if low is not None and low > high:
        raise ProtocolError(
            f"{ev.kind} about a command not due until {stamp(not_before)}, "
            f"received at {stamp(received)}"
        )
    moved: dict[str, datetime] = {}
    said: list[str] = []
    for name in ("at", "started_at"):
        value: datetime | None = getattr(ev, name)
        if value is None:
            continue
        if value > high:
            moved[name] = received
        elif low is not None and not_before is not None and value < low:
            moved[name] = not_before
        else:
            continue
        said.append(f"{name} {stamp(value)} ({_offset(value - moved[name])})")
    if not moved:
        return ev
    note = f"the player's clock is off: it said {', '.join(said)}"
    return replace(ev, **moved, clock_note=note)  # type: ignore[arg-type]


def _offset(delta: timedelta) -> str:
    """`3h ahead`, `20089d behind`: how far a reported time is from the nearest possible."""
    seconds = abs(delta.total_seconds())
    way = "ahead" if delta > timedelta(0) else "behind"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} {way}"
    return f"{seconds:.0f}s {way}"
