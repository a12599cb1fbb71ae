"""paho's client with its per-packet costs cut, for the tens of thousands of packets a
broadcast brings: socket I/O in bulk, and PUBLISH packets without properties read without
paho's general property parser.

paho reads a packet as a byte of its type, its length a byte at a time, then its body, each
a `recv`; it writes each packet with a `send` of its own. Each such call lets go of Python's
one running thread and must wait its turn to take it back, and coso's network thread shares
that with the thread that applies what players report: a burst of 20,000 player events cost
100,000 calls and as many waits. Here a `recv` takes up to READ_CHUNK bytes, which paho's
small reads are then served from, and consecutive acknowledgements and QoS 1-2 publishes
waiting to be written go out as one `send`.

Over MQTT 5, paho builds a `Properties` for every PUBLISH it reads, which fills two tables
of every property of the protocol and then clears each by name: most of the time paho spends
on a player's event, which carries no property. A PUBLISH at QoS 0 or 1 whose property
length is 0 is read here with an empty `Properties` that shares those tables; any other
packet is paho's to read, as before.

The read-ahead is in this process, where a selector cannot see it: `loop_read` goes on
until paho has taken all of it, so any loop (coso's NetworkLoop, paho's own) that calls it
when the socket is readable reads everything that came.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

READ_CHUNK = 65536  # bytes one recv may take
WRITE_CHUNK = 65536  # bytes of packets joined into one send, at most
PUBLISH, PUBACK = 0x30, 0x40
_TABLES = Properties(PacketTypes.PUBLISH)


class NoProperties(Properties):
    """The properties of a PUBLISH that has none: a paho `Properties` (properties may be
    set on it, `json()` and `isEmpty()` answer as paho's), without building paho's two
    tables of every property for each message."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self) -> None:
        self.packetType = PacketTypes.PUBLISH


def joinable(packet: dict[str, Any]) -> bool:
    """A whole packet whose writing paho does nothing more about: an acknowledgement, or a
    QoS 1-2 publish (done when its PUBACK comes back, not when written). A QoS 0 publish
    (paho reports it published once written) and a DISCONNECT (the socket closes after it)
    are written on their own."""
    kind = packet["command"] & 0xF0
    return packet["pos"] == 0 and (kind == PUBACK or (kind == PUBLISH and packet["qos"] > 0))


def join_head(out: deque[dict[str, Any]], limit: int = WRITE_CHUNK) -> None:
    """Join the joinable packets at the head of `out` into packets of up to `limit` bytes
    (a larger one stays whole), in their order; the rest of the queue is left as it is."""
    if len(out) < 2 or not joinable(out[0]) or not joinable(out[1]):
        return
    joined: list[dict[str, Any]] = []
    parts: list[bytes | bytearray] = []
    size = 0
    while out and joinable(out[0]):
        packet = out.popleft()
        if parts and size + packet["to_process"] > limit:
            joined.append(_one(parts))
            parts, size = [], 0
        parts.append(packet["packet"])
        size += packet["to_process"]
    joined.append(_one(parts))
    out.extendleft(reversed(joined))


def _one(parts: list[bytes | bytearray]) -> dict[str, Any]:
    """A packet of paho's write queue holding `parts`' bytes, to be written and forgotten."""
    body = b"".join(parts)
    return {
        "command": PUBACK,
        "mid": 0,
        "qos": 0,
        "pos": 0,
        "to_process": len(body),
        "packet": body,
        "info": None,
    }


def plain_publish(header: int, packet: bytes | bytearray, mqtt5: bool) -> mqtt.MQTTMessage | None:
    """The message of a PUBLISH at QoS 0 or 1 with a topic and, over MQTT 5, no property;
    None for any other (paho reads it, and refuses it when malformed)."""
    qos = (header & 0x06) >> 1
    if qos > 1 or len(packet) < 2:
        return None
    end = 2 + int.from_bytes(packet[:2], "big")
    if end == 2:
        return None  # no topic: a topic alias, or malformed
    start = end + 2 if qos else end
    if len(packet) < start:
        return None
    mid = int.from_bytes(packet[end:start], "big") if qos else 0
    if mqtt5:
        if len(packet) == start or packet[start] != 0:
            return None  # properties: paho's parser reads them
        start += 1
    message = mqtt.MQTTMessage(mid, bytes(packet[2:end]))
    message.dup = bool(header & 0x08)
    message.qos = qos
    message.retain = bool(header & 0x01)
    message.properties = NoProperties() if mqtt5 else None
    message.payload = bytes(packet[start:])
    return message


class LeanClient(mqtt.Client):
    """A paho client reading ahead, writing packets together, and reading PUBLISH packets
    without properties itself (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""
        self._ahead_at = 0
        self._ahead_sock: Any = None  # the socket it was read from

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that paho has not taken yet."""
        if self._ahead_sock is not self._sock:
            return 0
        return len(self._ahead) - self._ahead_at

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTT_ERR_SUCCESS and self.buffered:
            rc = super().loop_read(max_packets)
        return rc

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self.buffered:
            chunk = super()._sock_recv(READ_CHUNK)  # BlockingIOError: nothing came
            if len(chunk) <= bufsize:
                return chunk  # b"": the connection closed
            self._ahead, self._ahead_at, self._ahead_sock = chunk, 0, self._sock
        start = self._ahead_at
        self._ahead_at = min(start + bufsize, len(self._ahead))
        if self._ahead_at == len(self._ahead):
            taken = self._ahead[start:]
            self._ahead, self._ahead_at, self._ahead_sock = b"", 0, None
            return taken
        return self._ahead[start : self._ahead_at]

    def _packet_write(self) -> mqtt.MQTTErrorCode:
        join_head(self._out_packet)
        return super()._packet_write()

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        packet = self._in_packet
        message = plain_publish(packet["command"], packet["packet"], self._protocol == mqtt.MQTTv5)
        if message is None:
            return super()._handle_publish()
        self._easy_log(
            mqtt.MQTT_LOG_DEBUG,
            "Received PUBLISH (d%d, q%d, r%d, m%d), %r, ...  (%d bytes)",
            message.dup,
            message.qos,
            message.retain,
            message.mid,
            message._topic,
            len(message.payload),
        )
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        if message.qos == 0 or self._manual_ack:
            return mqtt.MQTT_ERR_SUCCESS
        return self._send_puback(message.mid)
