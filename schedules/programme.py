"""Each loudspeaker player's programme for the next hours (the `sync` command), so a player
that loses its link still plays its slots on time from its own clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from channels import protocol as p
from channels.endpoints import Endpoint, resolve_targets
from content.media import media_for
from content.models import APPROVED, ContentItem
from schedules.models import Schedule
from schedules.timing import timing_of

S = Schedule.__table__


def programmes(
    engine: Engine, now: datetime, horizon: timedelta, fire_after: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Player id → its slots in (now, now + horizon]: approved audio of enabled loudspeaker
    schedules, keyed as the commands will name them. Media carry sha256 and duration; the
    channel adds the URL."""
    C = ContentItem.__table__
    with engine.connect() as conn:
        schedules = conn.execute(
            select(S).where(S.c.enabled.is_(True), S.c.channel == "loudspeaker")
        ).all()
        approved = {
            r.id: r
            for r in conn.execute(
                select(C.c.id, C.c.title).where(
                    C.c.id.in_({s.content_id for s in schedules}), C.c.state == APPROVED
                )
            )
        }
        players = dict(
            conn.execute(
                select(Endpoint.__table__.c.id, Endpoint.__table__.c.address).where(
                    Endpoint.__table__.c.channel == "loudspeaker"
                )
            ).all()
        )
    audio = media_for(engine, set(approved))
    out: dict[str, list[dict[str, Any]]] = {address: [] for address in players.values()}
    for sch in schedules:
        asset = audio.get(sch.content_id)
        if sch.content_id not in approved or asset is None:
            continue
        start = max(now, sch.fired_through) if fire_after is None else fire_after
        times = timing_of(sch).fire_times(start, now + horizon)
        if not times:
            continue
        targets = resolve_targets(engine, "loudspeaker", sch.targets)
        for when in times:
            entry = {
                "slot": p.slot_key(sch.id, when),
                "media": {"sha256": asset.sha256, "duration": asset.duration_seconds},
                "not_before": p.stamp(when),
                "expires_at": p.stamp(when + timedelta(seconds=sch.validity_seconds))
                if sch.validity_seconds
                else None,
                "priority": sch.priority,
                "title": approved[sch.content_id].title,
            }
            for endpoint_id, _unit in targets:
                out[players[endpoint_id]].append(entry)
    for entries in out.values():
        entries.sort(key=lambda e: e["not_before"])
    return out
