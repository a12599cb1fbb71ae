"""Commune loudspeakers: IP players over MQTT (docs/player-protocol.md).

Endpoint address = the player id. One `play` (or emergency `interrupt`) command per delivery,
QoS 1 with a bounded number awaiting the broker's PUBACK; `sent` when the broker has it.
The player's events come back on its own events topic and are mapped here to outcomes:
`received` → delivered, `finished` → played (at the true start time), `failed` → failed,
`expired` → expired. Players ignore a delivery id they have seen, so a command may be sent
again safely (after a crash, a broker restart, or when no `received` came back).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt

from channels.base import Accepted, Channel, Outbound, Outcome, TransientSendError
from channels.loudspeaker import protocol as p
from channels.loudspeaker.credentials import KeyRing
from channels.loudspeaker.mqtt import (
    BrokerAddress,
    PubackWindow,
    connect_async,
    new_client,
    parse_broker_url,
    probe_protocol,
    publish_properties,
)
from channels.loudspeaker.mqtt_loop import NetworkLoop
from channels.loudspeaker.settings import LoudspeakerSettings
from channels.loudspeaker.signing import sign
from coso.durations import parse_duration

log = logging.getLogger(__name__)
CONNECT_PROBE_TIMEOUT = 5.0  # seconds for the broker to answer a first connection
REACH_MIN_DELAY, REACH_MAX_DELAY = 1.0, 30.0  # between tries while the broker is away

# player event → (delivery state, activity log event)
EVENT_STATES = {
    p.RECEIVED: ("delivered", "received"),
    p.FINISHED: ("played", "played"),
    p.FAILED: ("failed", "failed"),
    p.EXPIRED: ("expired", "expired"),
}


@dataclass(frozen=True)
class Inbound:
    """A message from a player, as it arrived."""

    player: str
    kind: str  # "events" | "status"
    payload: dict[str, Any]
    received_at: datetime


class LoudspeakerChannel(Channel):
    name = "loudspeaker"
    resend_safe = True

    def __init__(
        self,
        settings: LoudspeakerSettings,
        broker_url: str,
        public_url: str,
        now: Any,
        role: str = "all",
        keys: KeyRing | None = None,
        instance: str = "",
    ) -> None:
        """`role`: "all" sends commands and takes events; "commands" only sends (another
        process takes the events); "events" only takes events. `keys`: each player's key
        to sign its commands with (a channel that sends needs them). `instance`: the
        dispatcher's name when several share the players (its client ids carry it, and
        player events are shared among them over MQTT 5)."""
        self.settings = settings
        self.keys = keys
        self.role = role
        self.instance = instance
        self.shares_events = False  # known once the broker says which protocol it speaks
        self.topics = p.Topics(settings.topic_prefix)
        self.public_url = public_url.rstrip("/")
        self._now = now
        self.late_after = parse_duration(settings.late_after)
        b = settings.broker
        self.address: BrokerAddress = parse_broker_url(broker_url, b.username, b.password)
        # The window bounds what awaits a PUBACK; paho unbounded (0) skips its own walk of
        # every message it holds on each PUBACK.
        self.window = PubackWindow(settings.max_inflight)
        self.inbound: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._closed = threading.Event()
        self.client: mqtt.Client | None = None  # once the broker has answered
        self.protocol = mqtt.MQTTv311
        self.loop = NetworkLoop(f"mqtt-{role}").start()
        protocol = probe_protocol(self.address, b, CONNECT_PROBE_TIMEOUT)
        if protocol is not None:
            self._attach(protocol)
        else:
            # The broker is away: only this channel waits for it (its deliveries stay
            # queued), and it keeps asking, with backoff, until the broker answers.
            log.warning(
                "cannot reach the broker %s: loudspeakers wait for it; retrying",
                self.address.url,
            )
            threading.Thread(
                target=self._reach_broker, name=f"mqtt-{role}-reach", daemon=True
            ).start()

    def _attach(self, protocol: int) -> None:
        """Make the client (MQTT 5 when the broker speaks it) and connect it on the loop,
        which reconnects it by itself after any drop."""
        b = self.settings.broker
        self.shares_events = bool(
            self.instance and self.settings.share_group and protocol == mqtt.MQTTv5
        )
        expiry = None
        if self.shares_events and self.role != "commands":
            expiry = int(parse_duration(self.settings.shared_session_expiry).total_seconds())
        client = new_client(self.client_id, self.address, b, protocol, persistent=True)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_publish = lambda _c, _u, mid, _r, _p: self.window.acknowledged(mid)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self._subscribed.set()
        self.protocol = protocol
        connect_async(
            client,
            self.address,
            b.keepalive,
            protocol,
            persistent=True,
            loop=self.loop,
            session_expiry=expiry,
        )
        self.client = client

    @property
    def client_id(self) -> str:
        """`client_id`, with the dispatcher's name when it has one, and `-events` for the
        connection that takes player events apart: no two connections share one."""
        name = self.settings.client_id + (f"-{self.instance}" if self.instance else "")
        return f"{name}-events" if self.role == "events" else name

    @property
    def shared_events(self) -> str:
        """The shared subscription to every player's events ($share/<group>/...)."""
        return f"$share/{self.settings.share_group}/{self.topics.all_events}"

    def _reach_broker(self) -> None:
        delay = REACH_MIN_DELAY
        while not self._closed.wait(delay):
            protocol = probe_protocol(self.address, self.settings.broker, CONNECT_PROBE_TIMEOUT)
            if protocol is not None:
                log.info("the broker %s answers: connecting", self.address.url)
                self._attach(protocol)
                return
            log.info("broker %s still unreachable; again in %.0fs", self.address.url, delay)
            delay = min(delay * 2, REACH_MAX_DELAY)

    @property
    def connected(self) -> bool:
        """Linked to the broker now."""
        return self.client is not None and self.client.is_connected()

    @property
    def subscribed(self) -> bool:
        """The broker has confirmed the subscription to players' events (once is enough: the
        session is persistent)."""
        return self._subscribed.is_set()

    def restart_network(self) -> None:
        """A new network loop for the client, in place of one that died or got stuck."""
        old, self.loop = self.loop, NetworkLoop(self.loop.name).start()
        if self.client is not None:
            self.loop.add(self.client)
        del old  # its thread is gone or stuck; nothing to join

    @property
    def mqtt5(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker %s refused coso: %s", self.address.url, reason)
            return
        events = [self.topics.all_events, self.topics.all_status]
        if self.role == "commands":  # a persistent session may still hold these
            client.unsubscribe(events + ([self.shared_events] if self.shares_events else []))
        elif self.shares_events:
            # Each event to one dispatcher; status (retained: who is online) to every one.
            client.unsubscribe([self.topics.all_events])  # an earlier session's, unshared
            client.subscribe([(self.shared_events, 1), (self.topics.all_status, 1)])
        else:
            client.subscribe([(topic, 1) for topic in events])
        self._connected.set()
        log.info(
            "connected to broker %s (MQTT %s)", self.address.url, "5" if self.mqtt5 else "3.1.1"
        )

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """Queue a player's message for the ingest. Whatever it holds, this returns: paho
        acknowledges the message then (QoS 1), so a refused one is not delivered again, and
        the network loop goes on."""
        topic = p.shown(message.topic, 200)
        try:
            player, kind = self.topics.parse(message.topic)
            if kind == "cmd":
                return
            raw = message.payload
            payload = p.decode(raw, self.settings.max_payload) if raw else {}
        except p.ProtocolError as exc:
            log.warning("ignored a message on %s: %s", topic, exc)
            return
        except Exception:
            log.exception("ignored a message on %s that could not be read", topic)
            return
        self.inbound.put(Inbound(player, kind, payload, self._now()))

    # --- sending ------------------------------------------------------------------------

    def send(self, message: Outbound) -> Accepted:
        result = self.send_many([message])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def send_many(self, messages: Sequence[Outbound]) -> list[Accepted | Exception]:
        return self.settle(self.publish_many(messages))

    def publish_many(self, messages: Sequence[Outbound]) -> list[Any]:
        """Publish every command, each once fewer than max_inflight await a PUBACK (the
        window; paho itself never queues); `settle` then awaits the PUBACKs."""
        now = self._now()
        deadline = time.monotonic() + self.settings.publish_timeout
        pending: list[mqtt.MQTTMessageInfo | Exception] = []
        for message in messages:
            try:
                pending.append(self._publish(message, now, deadline))
            except TransientSendError as exc:
                pending.append(exc)
        return pending

    def settle(self, pending: Sequence[Any]) -> list[Accepted | Exception]:
        """Each published command: `sent` once the broker acknowledged it, else an error
        to retry (no PUBACK within publish_timeout, or the connection lost)."""
        deadline = time.monotonic() + self.settings.publish_timeout
        results: list[Accepted | Exception] = []
        for info in pending:
            if isinstance(info, Exception):
                results.append(info)
                continue
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    info.wait_for_publish(remaining)
            except (RuntimeError, ValueError) as exc:
                results.append(TransientSendError(f"broker connection lost: {exc}"))
                continue
            if info.is_published():
                results.append(Accepted(state="sent", event="sent", provider_id=f"mqtt:{info.mid}"))
            else:
                results.append(
                    TransientSendError(
                        f"no PUBACK from {self.address.url} within {self.settings.publish_timeout}s"
                    )
                )
        return results

    def republish(self, messages: Sequence[Outbound]) -> int:
        """Send commands again without waiting (players deduplicate); returns how many went."""
        now = self._now()
        deadline = time.monotonic() + self.settings.publish_timeout
        sent = 0
        for message in messages:
            try:
                self._publish(message, now, deadline)
                sent += 1
            except TransientSendError:
                break
        return sent

    def _publish(self, message: Outbound, now: datetime, deadline: float) -> mqtt.MQTTMessageInfo:
        if self.client is None or not self.client.is_connected():
            raise TransientSendError(f"not connected to the broker {self.address.url}")
        media = message.extra.get("media")
        if media is None:
            raise TransientSendError("no media")  # build_messages refuses these earlier
        scheduled = message.extra["scheduled_for"]
        payload = p.play_command(
            delivery_id=message.delivery_id,
            media=self.media_ref(media["sha256"], media["duration"]),
            not_before=scheduled,
            expires_at=message.expires_at,
            priority=message.priority,
            volume=self.settings.volume,
            title=message.title,
            slot=p.slot_key(message.extra["schedule_id"], scheduled),
            sent_at=now,
            order=message.extra.get("order", 0),
        )
        payload = self.signed(message.address, payload, now)
        properties = None
        if self.mqtt5:
            expiry = None
            if message.expires_at is not None:
                expiry = max(1, int((message.expires_at - now).total_seconds()))
            properties = publish_properties(
                self.topics.events(message.address), str(message.delivery_id).encode(), expiry
            )
        info = self.window.publish(
            self.client,
            self.topics.commands(message.address),
            p.encode(payload),
            deadline - time.monotonic(),
            properties=properties,
        )
        if info is None:
            raise TransientSendError(
                f"{self.settings.max_inflight} commands awaiting a PUBACK from "
                f"{self.address.url} for {self.settings.publish_timeout}s"
            )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransientSendError(
                f"publish to {message.address} failed: {mqtt.error_string(info.rc)}"
            )
        return info

    def signed(self, player: str, command: dict[str, Any], now: datetime) -> dict[str, Any]:
        if self.keys is None:
            raise RuntimeError("a loudspeaker channel that sends commands needs player keys")
        key, generation = self.keys.key(player)
        return sign(command, player, key, generation, now)

    def media_ref(self, sha256: str, duration: float) -> dict[str, Any]:
        """How a player finds a clip: coso's URL (with its own token), checksum, length."""
        return {
            "url": f"{self.public_url}/media/{sha256}.mp3",
            "sha256": sha256,
            "duration": duration,
        }

    def publish_sync(self, player: str, entries: Sequence[dict[str, Any]]) -> bool:
        now = self._now()
        payload = {"type": p.SYNC, "generated_at": p.stamp(now), "entries": entries}
        if self.client is None or not self.client.is_connected():
            return False
        payload = self.signed(player, payload, now)
        info = self.window.publish(
            self.client,
            self.topics.commands(player),
            p.encode(payload),
            self.settings.publish_timeout,
        )
        return info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS

    def take_inbound(self, limit: int, wait: float, linger: float = 0.0) -> list[Inbound]:
        """Up to `limit` messages: waits up to `wait` for the first, then up to `linger` more
        for others to join it (one transaction for many events costs little more than one)."""
        try:
            items = [self.inbound.get(timeout=wait)]
        except queue.Empty:
            return []
        until = time.monotonic() + linger
        while len(items) < limit:
            try:
                items.append(self.inbound.get_nowait())
            except queue.Empty:
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    items.append(self.inbound.get(timeout=left))
                except queue.Empty:
                    break
        return items

    def close(self) -> None:
        self._closed.set()
        self.loop.stop()


def event_outcomes(
    endpoint_id: int,
    player: str,
    events: Sequence[p.PlayerEvent],
    late_after: timedelta,
) -> list[Outcome]:
    """Map a player's events to outcomes bound to that player's endpoint: by delivery id, or
    by the programme slot it names. A `played` entry says it was late when it started more
    than `late_after` after its slot."""
    outcomes: list[Outcome] = []
    actor = f"player:{player}"
    for ev in events:
        if ev.kind not in EVENT_STATES:
            continue  # downloaded / started: device status only
        schedule_id, slot_time = (None, None)
        if ev.delivery_id is None:
            schedule_id, slot_time = split_slot(ev.slot or "")
            if schedule_id is None:
                schedule_id, slot_time = -1, datetime.min.replace(tzinfo=UTC)  # names nothing
        state, event_name = EVENT_STATES[ev.kind]
        at, detail = ev.at, None
        if ev.kind == p.FINISHED:
            at = ev.started_at or ev.at
            # The entry's time is when it started (shown in the plan's zone): how long it played.
            detail = f"phát {max(0.0, (ev.at - at).total_seconds()):.1f} giây"
        if ev.as_run:
            uploaded = "ghi nhận từ nhật ký phát của loa, gửi lên khi có kết nối lại"
            detail = f"{detail}; {uploaded}" if detail else uploaded
        if ev.clock_note:
            detail = f"{detail}; {ev.clock_note}" if detail else ev.clock_note
        outcomes.append(
            Outcome(
                ev.delivery_id,
                state,
                event_name,
                at,
                actor + (" (as-run)" if ev.as_run else ""),
                error=ev.reason if ev.kind in (p.FAILED, p.EXPIRED) else None,
                detail=detail,
                endpoint_id=endpoint_id,
                late_after=late_after if ev.kind == p.FINISHED else None,
                schedule_id=schedule_id,
                scheduled_for=slot_time,
                inbound=True,
            )
        )
    return outcomes


def split_slot(slot: str) -> tuple[int | None, datetime | None]:
    """`12@2021-05-03T06:00:00Z` → (12, that time); (None, None) when it is not a slot."""
    try:
        return p.parse_slot(slot)
    except p.ProtocolError:
        return None, None
