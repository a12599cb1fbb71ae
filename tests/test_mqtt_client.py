"""coso's paho client reads ahead, writes packets together and reads PUBLISH packets without
properties itself: through a real broker, every message must still arrive once, whole and
in order, with its properties, and every one it received must be acknowledged (the broker
sends again, on reconnection, what a persistent session did not acknowledge)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from channels.loudspeaker.mqtt import (
    LocalBroker,
    connect_properties,
    new_client,
    parse_broker_url,
)
from channels.loudspeaker.mqtt_client import LeanClient, plain_publish
from channels.loudspeaker.mqtt_loop import NetworkLoop
from channels.loudspeaker.settings import BrokerSettings

BURST = 5000


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """mosquitto as docs/operations.md sets it up: no per-client queue limit, which would
    drop part of a burst to a subscriber that reads slower than the publisher writes."""
    broker = LocalBroker(prefer="mosquitto").start()
    yield broker.url
    broker.stop()


class Inbox:
    """Messages a client received, and whether its connection ever dropped."""

    def __init__(self) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.dropped = 0
        self.subscribed = threading.Event()
        self.lock = threading.Lock()

    def on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def wait(self, count: int, timeout: float = 60) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)


def _lean(url: str, client_id: str, protocol: int, *, persistent: bool = False) -> LeanClient:
    address = parse_broker_url(url)
    settings = BrokerSettings(url=url)
    client = new_client(client_id, address, settings, protocol, persistent=persistent)
    assert isinstance(client, LeanClient)
    return client


def _subscribe(client: mqtt.Client, topic: str, inbox: Inbox) -> None:
    client.on_message = inbox.on_message
    client.on_subscribe = lambda *_: inbox.subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, 1)

    def dropped(*_: Any) -> None:
        inbox.dropped += 1

    client.on_disconnect = dropped


def _connect(client: mqtt.Client, url: str, protocol: int, persistent: bool = False) -> None:
    address = parse_broker_url(url)
    client.connect(
        address.host,
        address.port,
        30,
        clean_start=not persistent if protocol == mqtt.MQTTv5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties=connect_properties(protocol, persistent, 300),
    )


def _plain_publisher(url: str, protocol: int) -> mqtt.Client:
    address = parse_broker_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=protocol
    )
    client.max_inflight_messages_set(1000)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt3"])
def test_a_burst_arrives_whole_in_order_and_acknowledged(broker_url: str, protocol: int) -> None:
    """5,000 events published at once reach coso's client on its network loop, each once
    and in order; acknowledged, so the broker has nothing to send again on reconnection."""
    tag = uuid.uuid4().hex[:8]
    topic = f"lean-{tag}/p/events"
    inbox = Inbox()
    loop = NetworkLoop(f"lean-{tag}").start()
    client_id = f"lean-sub-{tag}"
    client = _lean(broker_url, client_id, protocol, persistent=True)
    _subscribe(client, topic, inbox)
    _connect(client, broker_url, protocol, persistent=True)
    loop.add(client)
    publisher = _plain_publisher(broker_url, protocol)
    try:
        assert inbox.subscribed.wait(10), "no SUBACK"
        payloads = [f'{{"seq":{n},"kind":"played"}}'.encode() for n in range(BURST)]
        infos = [publisher.publish(topic, body, qos=1) for body in payloads]
        for info in infos:
            info.wait_for_publish(30)
        got = inbox.wait(BURST)
        assert [m.payload for m in got] == payloads
        assert {m.topic for m in got} == {topic}
        assert all(m.qos == 1 for m in got)
        if protocol == mqtt.MQTTv5:
            assert all(m.properties is not None and m.properties.isEmpty() for m in got)
        assert inbox.dropped == 0, "the broker closed the connection: a malformed packet"
        loop.disconnect(client)
        # The same session again: what was not acknowledged would be sent now.
        again = Inbox()
        second = _lean(broker_url, client_id, protocol, persistent=True)
        _subscribe(second, topic, again)
        _connect(second, broker_url, protocol, persistent=True)
        loop.add(second)
        assert again.subscribed.wait(10)
        time.sleep(1.0)
        assert again.messages == [], f"{len(again.messages)} message(s) sent again"
        loop.disconnect(second)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        loop.stop()


def test_properties_and_retained_flags_arrive_as_paho_reads_them(broker_url: str) -> None:
    """A message with properties is read by paho as before; one without has an empty set."""
    tag = uuid.uuid4().hex[:8]
    topic = f"lean-{tag}/p/cmd"
    inbox = Inbox()
    loop = NetworkLoop(f"lean-{tag}").start()
    client = _lean(broker_url, f"lean-sub-{tag}", mqtt.MQTTv5)
    _subscribe(client, topic, inbox)
    _connect(client, broker_url, mqtt.MQTTv5)
    loop.add(client)
    publisher = _plain_publisher(broker_url, mqtt.MQTTv5)
    try:
        assert inbox.subscribed.wait(10)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"lean-{tag}/p/events"
        props.CorrelationData = b"42"
        publisher.publish(topic, b"with", qos=1, properties=props).wait_for_publish(10)
        publisher.publish(topic, b"without", qos=1).wait_for_publish(10)
        publisher.publish(topic, b"at most once", qos=0).wait_for_publish(10)
        with_props, without, qos0 = inbox.wait(3)
        assert with_props.payload == b"with"
        assert with_props.properties.ResponseTopic == f"lean-{tag}/p/events"
        assert with_props.properties.CorrelationData == b"42"
        assert without.payload == b"without" and without.properties.json() == {}
        assert qos0.payload == b"at most once" and qos0.qos == 0
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        loop.stop()


def test_its_publishes_go_out_together_and_each_is_acknowledged(broker_url: str) -> None:
    """5,000 QoS 1 publishes from coso's client (joined into few writes) all reach a plain
    subscriber in order, and each publish is reported acknowledged by the broker."""
    tag = uuid.uuid4().hex[:8]
    topic = f"lean-{tag}/p/cmd"
    inbox = Inbox()
    address = parse_broker_url(broker_url)
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{tag}")
    _subscribe(subscriber, topic, inbox)
    subscriber.connect(address.host, address.port)
    subscriber.loop_start()
    loop = NetworkLoop(f"lean-{tag}").start()
    client = _lean(broker_url, f"lean-pub-{tag}", mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    _connect(client, broker_url, mqtt.MQTTv5)
    loop.add(client)
    try:
        assert inbox.subscribed.wait(10) and connected.wait(10)
        payloads = [f"command {n}".encode() for n in range(BURST)]
        infos: list[mqtt.MQTTMessageInfo] = []
        loop.call(lambda: infos.extend(client.publish(topic, b, qos=1) for b in payloads), 10)
        got = inbox.wait(BURST)
        assert [m.payload for m in got] == payloads
        deadline = time.monotonic() + 10
        while not all(i.is_published() for i in infos) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(i.is_published() for i in infos) == BURST
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
        loop.stop()


def test_read_ahead_is_read_on_pahos_own_loop(broker_url: str) -> None:
    """With paho's loop_start (the operator's commands, the protocol probe), bytes read
    ahead are not left waiting for the socket to become readable again."""
    tag = uuid.uuid4().hex[:8]
    topic = f"lean-{tag}/p/events"
    inbox = Inbox()
    client = _lean(broker_url, f"lean-sub-{tag}", mqtt.MQTTv5)
    _subscribe(client, topic, inbox)
    _connect(client, broker_url, mqtt.MQTTv5)
    client.loop_start()
    publisher = _plain_publisher(broker_url, mqtt.MQTTv5)
    try:
        assert inbox.subscribed.wait(10)
        for info in [publisher.publish(topic, b"%d" % n, qos=1) for n in range(BURST)]:
            info.wait_for_publish(30)
        assert len(inbox.wait(BURST, timeout=20)) == BURST
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        client.loop_stop()
        client.disconnect()


@pytest.mark.parametrize(
    "packet, mqtt5",
    [
        (b"\x00\x00\x00\x01\x00body", True),  # no topic (a topic alias would stand for it)
        (b"\x00\x01t\x00\x01\x03\x23\x00\x01body", True),  # a property: paho reads it
        (b"\x00\x05to", True),  # shorter than its topic length says
        (b"\x00\x01t\x00", True),  # no packet id
    ],
)
def test_packets_it_does_not_read_are_left_to_paho(packet: bytes, mqtt5: bool) -> None:
    assert plain_publish(0x32, packet, mqtt5) is None


def test_qos2_publishes_are_left_to_paho() -> None:
    assert plain_publish(0x34, b"\x00\x01t\x00\x01\x00body", True) is None
    message = plain_publish(0x3B, b"\x00\x01t\x00\x07\x00body", True)  # dup, QoS 1, retained
    assert message is not None
    assert (message.mid, message.topic, message.payload) == (7, "t", b"body")
    assert message.dup and message.retain and message.qos == 1
