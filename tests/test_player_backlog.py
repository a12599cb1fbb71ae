"""Players that share one connection (the simulated ones run 500 to a connection) keep it
while they work through more commands than they can act on within the broker's keepalive:
the connection is not cut, so the broker does not deliver again what they already acted on,
and every command is acknowledged once."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from channels.loudspeaker import protocol as p
from channels.loudspeaker.mqtt import LocalBroker, mosquitto_path, parse_broker_url
from channels.loudspeaker.player.core import Player, PlayerState, StateFile
from channels.loudspeaker.player.runtime import MqttLink, Runner
from channels.loudspeaker.settings import BrokerSettings
from channels.loudspeaker.signing import command_key, sign
from tests.helpers import wait_for
from tests.loudspeakers import CountingSink

PLAYERS = 250
SAVE = 0.12  # seconds a slow memory card takes to save a player's state
KEEPALIVE = 5  # the least the settings allow: the broker cuts a link silent for 7.5 s
ORIGIN = "http://127.0.0.1:9"  # media are already on the card: nothing is fetched
SECRET = b"backlog-test-secret-0123456789ab"


class SlowCard(StateFile):
    """A player's state on a slow memory card: every save takes SAVE seconds."""

    def __init__(self) -> None:
        super().__init__(None)

    def save(self, state: PlayerState) -> None:
        time.sleep(SAVE)


class Observer:
    """coso's view of the broker: the players' events and status announcements."""

    def __init__(self, url: str, topics: p.Topics) -> None:
        address = parse_broker_url(url)
        self.received: Counter[int] = Counter()
        self.online: Counter[str] = Counter()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.topics = topics
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        subscribed = self.client.subscribe([(topics.all_events, 1), (topics.all_status, 1)])
        assert subscribed[0] == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        player, kind = self.topics.parse(message.topic)
        body = json.loads(message.payload)
        if kind == "status":
            self.online[player] += body.get("state") == p.ONLINE
            return
        records = body["records"] if body.get("type") in (p.BATCH, p.AS_RUN) else [body]
        for record in records:
            if record.get("type") == p.RECEIVED:
                self.received[record["delivery_id"]] += 1

    def publish(self, player: str, command: dict[str, Any]) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topics.commands(player), p.encode(command), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A mosquitto with coso's own settings for a local broker (no bound on the messages
    in flight to a client), as `coso serve` and the fault trials start it."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with LocalBroker(prefer="mosquitto") as broker:
        yield broker.url


def test_a_backlog_slower_to_act_on_than_the_keepalive_keeps_the_players_connection(
    own_broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    topics = p.Topics(f"backlog-{uuid.uuid4().hex[:8]}/v1")
    settings = BrokerSettings(url=own_broker, keepalive=KEEPALIVE)
    clip = b"ID3" + bytes(range(256)) * 16
    sha = hashlib.sha256(clip).hexdigest()
    (tmp_path / f"{sha}.mp3").write_bytes(clip)
    media = {"url": f"{ORIGIN}/media/{sha}.mp3", "sha256": sha, "duration": 1.0}
    ids = [f"loa-b{n:03d}" for n in range(1, PLAYERS + 1)]
    keys = {pid: command_key(SECRET, pid, 0) for pid in ids}

    observer = Observer(own_broker, topics)
    runner = Runner()
    link = MqttLink(
        f"coso-sim-{uuid.uuid4().hex[:8]}", ids, parse_broker_url(own_broker), settings,
        topics, runner,
    )  # fmt: skip
    for pid in ids:
        player = Player(
            pid, CountingSink(), tmp_path, SlowCard(), emit=link.publish_event,
            fetch=lambda *_: None, key=keys[pid], media_origin=ORIGIN,
        )  # fmt: skip
        runner.add(player, link)
    link.start()
    runner.start()
    try:
        wait_for(lambda: all(observer.online[pid] for pid in ids), 30, "the players online")
        now = datetime.now(UTC)
        sent = []
        for n, pid in enumerate(ids, start=1):
            command = p.play_command(
                delivery_id=n, media=media, not_before=now + timedelta(hours=1),
                expires_at=now + timedelta(hours=2), priority="normal", volume=80,
                title="Bản tin buổi sáng", slot=None, sent_at=now,
            )  # fmt: skip
            sent.append(observer.publish(pid, sign(command, pid, keys[pid], 0, now)))
        for info in sent:
            info.wait_for_publish(10)
        wait_for(
            lambda: len(observer.received) == PLAYERS, PLAYERS * SAVE * 3 + 30,
            "every command acknowledged",
        )  # fmt: skip
        time.sleep(1.0)  # an announcement or an acknowledgement more has time to arrive
    finally:
        link.stop()
        runner.stop()
        observer.close()

    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == [], refused[:3]
    assert set(observer.online.values()) == {1}, "the broker cut the players' connection"
    assert set(observer.received.values()) == {1}
