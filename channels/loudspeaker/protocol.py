"""The player protocol, version 1 (docs/player-protocol.md): topics and JSON payloads shared
by coso and the reference player. Pure data in, data out: no network here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

VERSION = 1
PLAYER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

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
    if not PLAYER_ID.match(player):
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


def parse_time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{field} = {value!r}: not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProtocolError(f"{field} = {value!r}: not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise ProtocolError(f"{field} = {value!r}: has no zone (write it in UTC with Z)")
    return parsed.astimezone(UTC)


def slot_key(schedule_id: int, slot: datetime) -> str:
    """One programme slot: the same on coso and on the player, whatever the delivery id."""
    return f"{schedule_id}@{stamp(slot)}"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, **payload}, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"payload is not JSON: {raw[:60]!r}") from exc
    if not isinstance(payload, dict):
        raise ProtocolError("payload is not a JSON object")
    if payload.get("v") != VERSION:
        raise ProtocolError(f"v = {payload.get('v')!r}: this side speaks version {VERSION}")
    return payload


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


def read_events(payload: dict[str, Any]) -> list[PlayerEvent]:
    """The events of one message: a single event, or an `events` / `as_run` batch."""
    kind = payload.get("type")
    if kind in (AS_RUN, BATCH):
        records = payload.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ProtocolError(f"{kind}: records must be a list of events")
        return [_read_event({"v": VERSION, **r}, as_run=kind == AS_RUN) for r in records]
    return [_read_event(payload, as_run=False)]


def _read_event(payload: dict[str, Any], *, as_run: bool) -> PlayerEvent:
    kind = payload.get("type")
    if kind not in EVENTS:
        raise ProtocolError(f"type = {kind!r}: not one of {list(EVENTS)}")
    delivery_id = payload.get("delivery_id")
    if delivery_id is not None and (not isinstance(delivery_id, int) or delivery_id < 1):
        raise ProtocolError(f"delivery_id = {delivery_id!r}: not a delivery id")
    slot = payload.get("slot")
    if delivery_id is None and not isinstance(slot, str):
        raise ProtocolError(f"{kind}: names neither a delivery_id nor a slot")
    at = parse_time(payload.get("at"), "at")
    if at is None:
        raise ProtocolError(f"{kind}: at is missing")
    reason = payload.get("reason")
    return PlayerEvent(
        kind=kind,
        at=at,
        delivery_id=delivery_id,
        slot=slot if isinstance(slot, str) else None,
        started_at=parse_time(payload.get("started_at"), "started_at"),
        reason=str(reason)[:500] if reason is not None else None,
        as_run=as_run,
    )
