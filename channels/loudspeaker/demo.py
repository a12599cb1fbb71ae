"""Simulated players for `coso serve --demo`, on the broker coso uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels.loudspeaker.settings import LoudspeakerSettings


def start_demo_players(settings: Any, cfg: LoudspeakerSettings, players: Sequence[str]) -> Any:
    """Simulated players `players` (their endpoint addresses), playing into a null sink,
    with the credentials of generation 0 (a demo database has no revoked player)."""
    from channels.loudspeaker.mqtt import parse_broker_url
    from channels.loudspeaker.player.runtime import PlayerGroup
    from channels.loudspeaker.player.sinks import NullSink
    from channels.loudspeaker.protocol import Topics
    from channels.loudspeaker.signing import command_key
    from content.media import media_dir, player_token, token_secret

    secret = token_secret(settings.media)
    return PlayerGroup(
        list(players),
        parse_broker_url(cfg.broker.url),
        cfg.broker,
        Topics(cfg.topic_prefix),
        data_dir=media_dir(settings.media).parent / "demo-players",
        tokens=lambda pid: player_token(secret, pid),
        sink=NullSink,
        keep_state=False,
        keys=lambda pid: (command_key(secret, pid, 0), 0),
        media_origin=settings.server.public_url,
    ).start()
