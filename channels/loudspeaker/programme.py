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
# A player's programme: its entries by start, one tuple shared by the players that have them.
Programme = tuple[dict[str, Any], ...]


def programmes(
    host: ChannelHost, now: datetime, horizon: timedelta, fire_after: datetime | None = None
) -> dict[str, Programme]:
    """Player id → its slots in (now, now + horizon], by start: approved audio of enabled
    loudspeaker schedules, keyed as the commands will name them; a player without a slot is
    left out. Players of the same slot and place in its order share its entry object, and
    players of the same entries share one tuple of them: with tens of thousands of players
    and a few programmes, what is built per player is one dict slot. `order`: where a
    priority item goes among those of the same slot (its commune's running order). Media
    carry sha256 and duration; the channel adds the URL."""
    # Content without audio cannot be played (and cannot be approved for it).
    slots = [s for s in host.upcoming(CHANNEL, now, horizon, fire_after) if s.media is not None]
    if not slots:
        return {}  # the players' addresses are not even read
    with host.engine.connect() as conn:
        rows = conn.execute(select(E.c.id, E.c.address).where(E.c.channel == CHANNEL))
        players: dict[int, str] = {eid: address for eid, address in rows}
    shape_of: dict[int, int] = {}  # endpoint id → index of its programme in `shapes`
    shapes: list[Programme] = [()]
    grown: dict[tuple[int, int], int] = {}  # (a programme, an entry's id) → with it added
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
                before = shape_of.get(endpoint_id, 0)
                key = (before, id(placed[order]))
                after = grown.get(key)
                if after is None:
                    after = grown[key] = len(shapes)
                    shapes.append((*shapes[before], placed[order]))
                shape_of[endpoint_id] = after
    by_start = [tuple(sorted(s, key=lambda e: e["not_before"])) for s in shapes]
    return {players[endpoint_id]: by_start[n] for endpoint_id, n in shape_of.items()}


def player_addresses(host: ChannelHost) -> list[str]:
    """Every loudspeaker player's id."""
    with host.engine.connect() as conn:
        return list(conn.scalars(select(E.c.address).where(E.c.channel == CHANNEL)))
