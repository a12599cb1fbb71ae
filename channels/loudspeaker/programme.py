"""Each loudspeaker player's programme for the next hours (the `sync` command), so a player
that loses its link still plays its slots on time from its own clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.endpoints import Endpoint
from channels.host import ChannelHost
from channels.loudspeaker import protocol as p
from coso.db import chunks

CHANNEL = "loudspeaker"
E = Endpoint.__table__
# A player's programme: its entries by start, one tuple shared by the players that have them.
Programme = tuple[dict[str, Any], ...]
ADDRESSES_BY_ID = 1000  # endpoint ids in one query for their addresses


def programmes(
    host: ChannelHost, now: datetime, horizon: timedelta, fire_after: datetime | None = None
) -> dict[str, Programme]:
    """Player id → its programme, as `programmes_by_endpoint` (which see) builds them."""
    built = programmes_by_endpoint(host, now, horizon, fire_after)
    names = addresses(host, list(built))
    return {names[eid]: programme for eid, programme in built.items() if eid in names}


def programmes_by_endpoint(
    host: ChannelHost, now: datetime, horizon: timedelta, fire_after: datetime | None = None
) -> dict[int, Programme]:
    """Endpoint id → its player's slots in (now, now + horizon], by start: approved audio of
    enabled loudspeaker schedules, keyed as the commands will name them; a player without a
    slot is left out. Players of the same slot and place in its order share its entry
    object, and players of the same entries share one tuple of them: with tens of thousands
    of players and a few programmes, what is built per player is one dict slot (and no
    player's address is read: the upkeep compares programmes every few seconds, and reads
    addresses only for those it sends). `order`: where a priority item goes among those of
    the same slot (its commune's running order). Media carry sha256 and duration; the
    channel adds the URL."""
    # Content without audio cannot be played (and cannot be approved for it).
    slots = [s for s in host.upcoming(CHANNEL, now, horizon, fire_after) if s.media is not None]
    if not slots:
        return {}
    # endpoint id → index of its programme in `shapes`; at the end, that programme (in place)
    shape_of: dict[int, Any] = {}
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
    for endpoint_id, n in shape_of.items():  # in place: no second dict of every player
        shape_of[endpoint_id] = by_start[n]
    return shape_of


def player_ids(host: ChannelHost) -> list[int]:
    """Every loudspeaker player's endpoint id."""
    with host.engine.connect() as conn:
        return list(conn.scalars(select(E.c.id).where(E.c.channel == CHANNEL)))


def addresses(host: ChannelHost, endpoint_ids: Sequence[int]) -> dict[int, str]:
    """The player ids (addresses) of these loudspeaker endpoints, read ADDRESSES_BY_ID at a
    time; those that are none are left out."""
    query = select(E.c.id, E.c.address).where(E.c.channel == CHANNEL)
    found: dict[int, str] = {}
    with host.engine.connect() as conn:
        for part in chunks(sorted(set(endpoint_ids)), ADDRESSES_BY_ID):
            rows = conn.execute(query.where(E.c.id.in_(part)))
            found.update((eid, address) for eid, address in rows)
    return found
