"""Commands an operator sends to players outside the schedule: `stop` (whatever plays ends
`failed`, "stopped by the operator", and the player reports it) and `set_volume`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, select

from channels.endpoints import Endpoint
from channels.loudspeaker import protocol as p
from channels.loudspeaker.mqtt import BrokerAddress, broker_protocol, connect_and_wait, new_client
from channels.loudspeaker.settings import BrokerSettings
from coso.errors import InputError

STOP_VALID = timedelta(minutes=1)  # a player offline longer ignores the stop when back


def stop_command(now: datetime) -> dict[str, Any]:
    """Stop what plays now: it expires, so that a player offline when it was sent does not
    stop a later broadcast when it comes back."""
    return {"type": p.STOP, "sent_at": p.stamp(now), "expires_at": p.stamp(now + STOP_VALID)}


def volume_command(level: int) -> dict[str, Any]:
    if not 0 <= level <= 100:
        raise InputError("volume", level, "not between 0 and 100")
    return {"type": p.SET_VOLUME, "volume": level}


def pick_players(engine: Engine, ids: Sequence[str], unit: str | None) -> list[str]:
    """The players named, or every player of `unit`; a name that is no loudspeaker endpoint
    is an error (nothing is sent)."""
    E = Endpoint.__table__
    query = select(E.c.address).where(E.c.channel == "loudspeaker")
    if unit and ids:
        raise InputError("--unit", unit, "give player ids or --unit, not both")
    if unit:
        query = query.where(E.c.unit_code == unit)
    elif ids:
        query = query.where(E.c.address.in_(ids))
    else:
        raise InputError("players", "", "name the players, or give --unit")
    with engine.connect() as conn:
        found = sorted(conn.scalars(query))
    unknown = sorted(set(ids) - set(found)) if not unit else []
    if unknown:
        raise InputError("player", ", ".join(unknown), "no loudspeaker endpoint has this id")
    if not found:
        raise InputError("--unit", unit, "has no loudspeaker players")
    return found


def send_to_players(
    address: BrokerAddress,
    broker: BrokerSettings,
    topics: p.Topics,
    players: Sequence[str],
    command: dict[str, Any],
    timeout: float = 10.0,
    sign: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> int:
    """Publish `command` to each player at QoS 1 (the broker keeps it for a player that is
    offline), signed for each by `sign` (players act on no unsigned command); returns how
    many the broker acknowledged."""
    client = new_client(
        f"coso-operator-{uuid.uuid4().hex[:8]}", address, broker, broker_protocol(address, broker)
    )
    try:
        reason = connect_and_wait(client, address, broker.keepalive, timeout)
    except OSError as exc:
        raise InputError("broker", address.url, f"cannot connect: {exc}") from exc
    try:
        if reason is None:
            raise InputError("broker", address.url, f"no answer within {timeout:.0f}s")
        if reason.is_failure:
            raise InputError("broker", address.url, f"refused the connection: {reason}")
        infos = [
            client.publish(
                topics.commands(player),
                p.encode(sign(player, command) if sign else command),
                qos=1,
            )
            for player in players
        ]
        deadline = time.monotonic() + timeout
        for info in infos:
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        return sum(1 for info in infos if info.is_published())
    finally:
        client.disconnect()
        client.loop_stop()
