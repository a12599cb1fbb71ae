"""The loudspeaker channel as coso finds it (entry point `coso.channels: loudspeaker`).
Imported at every start: MQTT and audio are imported only by the hooks that use them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.registry import ChannelPlugin
from channels.states import DELIVERED, EXPIRED, FAILED, PLAYED, SENT

if TYPE_CHECKING:
    from channels.loudspeaker.settings import LoudspeakerSettings


def build(host: Any, cfg: LoudspeakerSettings) -> Any:
    """The sender, when a broker is set (`coso serve` starts one on loopback when not)."""
    if not cfg.broker.url:
        return None
    from channels.loudspeaker import events_process
    from channels.loudspeaker.channel import LoudspeakerChannel
    from channels.loudspeaker.credentials import KeyRing
    from channels.loudspeaker.devices import player_count
    from content.media import token_secret

    apart = events_process.wanted(host.settings, cfg, player_count(host.engine))
    return LoudspeakerChannel(
        cfg,
        cfg.broker.url,
        host.settings.server.public_url,
        host.clock.now,
        role="commands" if apart else "all",
        keys=KeyRing(host.engine, token_secret(host.settings.media)),
        instance=host.settings.dispatcher.name,
    )


def service(host: Any, channel: Any) -> Any:
    from channels.loudspeaker.players import PlayerService

    return PlayerService(host, channel)


def routes(host: Any, _templates: Any) -> list[Any]:
    from starlette.routing import Mount

    from channels.loudspeaker.media_route import media_routes

    return [Mount("/media", media_routes(host))]


def cli(app: Any) -> None:
    from channels.loudspeaker.cli import add_commands

    add_commands(app)


def device_states(engine: Any, endpoint_ids: Any) -> Any:
    from channels.loudspeaker.devices import device_states as states

    return states(engine, endpoint_ids)


def tables() -> None:
    import channels.loudspeaker.credentials
    import channels.loudspeaker.devices  # noqa: F401


@contextmanager
def local_services(cfg: LoudspeakerSettings) -> Iterator[str | None]:
    """No broker set: start one on loopback so a newcomer sees the whole flow."""
    if cfg.broker.url:
        yield None
        return
    from channels.loudspeaker.mqtt import LocalBroker

    broker = LocalBroker().start()
    cfg.broker.url = broker.url
    try:
        yield f"MQTT broker for loudspeakers: {broker.kind} on {broker.url}"
    finally:
        broker.stop()


def demo(settings: Any, cfg: LoudspeakerSettings, addresses: list[str]) -> Any:
    from channels.loudspeaker.demo import start_demo_players

    return start_demo_players(settings, cfg, addresses)


def cue_ahead(cfg: LoudspeakerSettings) -> timedelta:
    from coso.durations import parse_duration

    return parse_duration(cfg.cue_ahead)


def end_emergency(host: Any, cfg: Any, end: Any) -> str:
    from channels.loudspeaker.emergency import end_emergency as end_it

    return end_it(host, cfg, end)


plugin = ChannelPlugin(
    name="loudspeaker",
    title="Loa truyền thanh thông minh (IP, MQTT)",
    build=build,
    settings="channels.loudspeaker.settings:LoudspeakerSettings",
    # `delivered` means the player has the command, not that anyone heard it: it can still
    # fail (download, interruption) or expire unplayed, and a player's as-run record is the
    # truth even after coso gave up on the delivery.
    extra_moves={FAILED: (DELIVERED,), EXPIRED: (SENT, DELIVERED), PLAYED: (EXPIRED,)},
    needs_audio=True,
    plays_in_turn=True,
    cue_ahead=cue_ahead,
    service=service,
    routes=routes,
    cli=cli,
    tables=tables,
    device_states=device_states,
    migrations=str(Path(__file__).parent / "migrations"),
    local_services=local_services,
    demo=demo,
    end_emergency=end_emergency,
)
