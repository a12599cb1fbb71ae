"""MQTT 5 properties of a command must be the bytes the standard (and paho) would send."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from channels.loudspeaker.mqtt import publish_properties


def test_command_properties_are_the_bytes_paho_would_send() -> None:
    for topic, correlation, expiry in (
        ("coso/v1/players/loa-00001/events", b"12345", 600),
        ("x" * 300, b"1", None),  # a length over one byte, and no expiry
        ("coso/v1/players/xã-1/events", b"9" * 20, 4_000_000),
    ):
        theirs = Properties(PacketTypes.PUBLISH)
        theirs.ResponseTopic = topic
        theirs.CorrelationData = correlation
        if expiry is not None:
            theirs.MessageExpiryInterval = expiry
        assert publish_properties(topic, correlation, expiry).pack() == theirs.pack()
