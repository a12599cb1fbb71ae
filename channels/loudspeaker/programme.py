"""Each loudspeaker player's programme for the next hours (the `sync` command), so a player
that loses its link still plays its slots on time from its own clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.endpoints import Endpoint
from channels.host import ChannelHost
from channels.loudspeaker import protocol as p

CHANNEL = "loudspeaker"
E = Endpoint.__table__


def programmes(
    host: ChannelHost, now: datetime, horizon: timedelta, fire_after: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Player id → its slots in (now, now + horizon]: approved audio of enabled loudspeaker
    schedules, keyed as the commands will name them; a player without a slot is left out.
    Players of the same slot and place in its order share its entry object. `order`: where
    a priority item goes among those of the same slot (its commune's running order). Media
    carry sha256 and duration; the channel adds the URL."""
    # Content without audio cannot be played (and cannot be approved for it).
    slots = [s for s in host.upcoming(CHANNEL, now, horizon, fire_after) if s.media is not None]
    if not slots:
        return {}  # the players' addresses are not even read
    with host.engine.connect() as conn:
        players = dict(
            conn.execute(select(E.c.id, E.c.address).where(E.c.channel == CHANNEL)).all()
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for slot in slots:
        entry = {
            "slot": p.slot_key(slot.schedule_id, slot.at),
            "media": dict(slot.media or {}),
            "not_before": p.stamp(slot.at),
            "expires_at": p.stamp(slot.expires_at) if slot.expires_at else None,
            "priority": slot.priority,
            "title": slot.title,
        }
        placed: dict[int, dict[str, Any]] = {}  # one entry per place in a commune's order
        units = slot.unit_codes or (None,) * len(slot.endpoint_ids)
        for endpoint_id, unit in zip(slot.endpoint_ids, units, strict=True):
            if endpoint_id in players:
                order = slot.position(unit)
                if order not in placed:
                    placed[order] = entry | {"order": order}
                out.setdefault(players[endpoint_id], []).append(placed[order])
    for entries in out.values():
        entries.sort(key=lambda e: e["not_before"])
    return out


def player_addresses(host: ChannelHost) -> list[str]:
    """Every loudspeaker player's id."""
    with host.engine.connect() as conn:
        return list(conn.scalars(select(E.c.address).where(E.c.channel == CHANNEL)))
