"""An emergency that ends early on the loudspeakers: every player still playing it (or
about to) is told to stop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from channels.endpoints import Endpoint
from channels.registry import EmergencyEnd
from channels.states import DELIVERED, SENT

UNFINISHED = (SENT, DELIVERED)  # played means finished: those need no stop


def end_emergency(host: Any, cfg: Any, end: EmergencyEnd) -> str:
    from channels.loudspeaker.credentials import KeyRing
    from channels.loudspeaker.mqtt import parse_broker_url
    from channels.loudspeaker.operator import send_to_players, stop_command
    from channels.loudspeaker.protocol import Topics
    from channels.loudspeaker.signing import sign
    from content.media import token_secret

    wanted = set(end.schedule_ids)
    rows = [r for r in host.deliveries("loudspeaker", UNFINISHED) if r.schedule_id in wanted]
    if not rows:
        return "không loa nào còn đang phát"
    E = Endpoint.__table__
    with host.engine.connect() as conn:
        players = sorted(
            conn.scalars(select(E.c.address).where(E.c.id.in_({r.endpoint_id for r in rows})))
        )
    if not cfg.broker.url:
        return f"không có máy chủ MQTT: {len(players)} loa chưa được lệnh dừng"
    keys = KeyRing(host.engine, token_secret(host.settings.media))

    def signed(player: str, payload: dict[str, Any]) -> dict[str, Any]:
        return sign(payload, player, *keys.key(player), datetime.now(UTC))

    address = parse_broker_url(cfg.broker.url, cfg.broker.username, cfg.broker.password)
    told = send_to_players(
        address, cfg.broker, Topics(cfg.topic_prefix), players, stop_command(end.now), sign=signed
    )
    return f"lệnh dừng tới {told}/{len(players)} loa"
