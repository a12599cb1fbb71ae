"""Player events and status messages that break the protocol (docs/player-protocol.md): each
is refused alone and logged, no exception escapes the network loop or the events loop, no
delivery or log entry is written, and a broadcast afterwards still plays and is recorded."""

from __future__ import annotations

import logging
import queue
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import Phase, given, settings
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from channels.endpoints import add_endpoints
from channels.loudspeaker import protocol as p
from channels.loudspeaker.channel import Inbound, LoudspeakerChannel
from channels.loudspeaker.devices import PlayerStatus
from channels.loudspeaker.mqtt import parse_broker_url
from channels.loudspeaker.players import PlayerService
from channels.registry import settings_of
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from tests.helpers import wait_for
from tests.hostile.conftest import assert_unchanged, snapshot
from tests.hostile.strategies import Payload, player_events, player_status
from tests.loudspeakers import (
    clip,
    import_broadcast,
    log_count,
    players,
    plays,
    running_coso,
    slot_in,
    speaker_settings,
)

UNKNOWN_DELIVERY = 987_654  # valid as an id; coso never sent it
DEVICE = {"player_status"}  # last seen / last failure: what a refused message may change
MAX_DEVICE_TEXT = 2_000  # what the device record keeps of one message, at most
NOW = p.stamp(datetime.now(UTC)) or ""


class Harness:
    """The channel's message handler and the events loop's batch, driven one message at a
    time: what paho's network loop and the ingest loop do."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        cfg = settings_of(settings, "loudspeaker")
        self.topics = p.Topics(cfg.topic_prefix)
        self.channel = LoudspeakerChannel(
            cfg, cfg.broker.url, "http://127.0.0.1:9", SystemClock().now
        )
        self.service = PlayerService(EngineHost(engine, settings, SystemClock()), self.channel)

    def feed(self, player: str, kind: str, raw: bytes) -> list[Inbound]:
        message = mqtt.MQTTMessage(topic=f"{self.topics.prefix}/players/{player}/{kind}".encode())
        message.payload = raw
        self.channel._on_message(self.channel.client, None, message)  # as the network loop
        items = []
        while True:
            try:
                items.append(self.channel.inbound.get_nowait())
            except queue.Empty:
                break
        if items:
            self.service.ingest(items)
        return items

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def harness(engine: Engine, settings: Settings, broker_url: str, tmp_path: Path) -> Any:
    settings = speaker_settings(settings, broker_url, tmp_path, events_process=False)
    add_endpoints(
        engine,
        [{"channel": "loudspeaker", "address": a, "name": a, "unit_code": "06040"}
         for a in ("loa-a", "loa-b")],
        SystemClock().now(),
    )  # fmt: skip
    h = Harness(engine, settings)
    yield h
    h.close()


def _device_texts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(PlayerStatus.playing, PlayerStatus.last_failure)).all()
    return [text for row in rows for text in row if text]


def _no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, f"logged as a failure: {bad[0].getMessage()[:300]}"


def test_events_that_break_the_protocol_are_refused_alone(
    harness: Harness, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(engine, exclude=DEVICE)

    @given(player_events(UNKNOWN_DELIVERY, NOW))
    def refused(payload: Payload) -> None:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            harness.feed("loa-a", "events", payload.raw)  # raises nothing
        _no_traceback_logged(caplog)
        assert_unchanged(engine, before, exclude=DEVICE)
        longest = max(map(len, _device_texts(engine)), default=0)
        assert longest <= MAX_DEVICE_TEXT, f"the device record keeps {longest} characters"

    refused()


def test_status_messages_that_break_the_protocol_are_refused_alone(
    harness: Harness, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(engine, exclude=DEVICE)

    @given(player_status("loa-a", NOW))
    def refused(payload: Payload) -> None:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            harness.feed("loa-a", "status", payload.raw)
        _no_traceback_logged(caplog)
        assert_unchanged(engine, before, exclude=DEVICE)

    refused()


def test_malformed_messages_are_logged_with_their_topic(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator can see what was refused and from whom."""
    for raw in (b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'{"v":1,"type":"finished"}'):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            harness.feed("loa-a", "events", raw)
        assert any("loa-a" in r.getMessage() for r in caplog.records), raw[:30]


@pytest.mark.parametrize(
    "kind, field, value",
    [
        ("finished", "started_at", "1970-01-01T00:00:00.000Z"),
        ("received", "at", "9999-12-31T23:59:59.000Z"),
    ],
)
def test_a_time_reported_outside_its_command_window_is_not_logged_as_is(
    kind: str,
    field: str,
    value: str,
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
) -> None:
    """A play cannot start before its command's not-before nor after now (plus a small
    clock-skew allowance): refused or clamped, never logged as reported."""
    settings = speaker_settings(settings, broker_url, tmp_path)
    slot = slot_in(1)
    import_broadcast(engine, settings, tmp_path, ["loa-x"], slot, clip(tmp_path, 0.5))
    with running_coso(engine, settings):
        wait_for(lambda: _delivery(engine) is not None, 20, "the delivery to be sent")
        delivery = _delivery(engine)
        now = datetime.now(UTC)
        event = p.event(kind, at=now, delivery_id=delivery, started_at=now)
        event[field] = value

        # Published again until applied: the events process may be subscribing still when
        # the delivery is first out (a repeat of an event is a no-op).
        def applied() -> bool:
            _publish(broker_url, settings, "loa-x", [p.encode(event)])
            return _seen_since(engine, now)

        wait_for(applied, 30, "the event to be applied", every=1.0)
    with engine.connect() as conn:
        times = conn.scalars(select(ActivityEntry.at).where(ActivityEntry.delivery_id == delivery))
        late = datetime.now(UTC) + timedelta(minutes=5)
        outside = [t for t in times if not slot - timedelta(seconds=5) <= _utc(t) <= late]
    assert not outside, f"logged at {outside}"


def test_a_broadcast_still_plays_after_a_flood_of_hostile_messages(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Through the broker and the events process as `coso serve` runs them: the whole batch
    of hostile messages first, then a broadcast that both players play and coso records."""
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = ["loa-a", "loa-b"]
    import_broadcast(
        engine, settings, tmp_path, ids, slot_in(3600), clip(tmp_path, 0.5), number="0/KH"
    )  # the players exist; nothing due yet
    group = players(settings, ids, tmp_path).start()
    try:
        with running_coso(engine, settings):
            sent: list[bytes] = [  # the known killers, then what the strategies generate
                b"[" * 100_000 + b"]" * 100_000,
                p.encode(p.event("finished", at=datetime.now(UTC), delivery_id=2**64)),
                p.encode({"type": "finished", "delivery_id": 1, "at": "0001-01-01T00:00:00+05:00"}),
                p.encode(p.event("finished", at=datetime.now(UTC), slot=f"{2**70}@{NOW}")),
            ]

            @settings_no_shrink
            @given(player_events(UNKNOWN_DELIVERY, NOW), player_status("loa-a", NOW))
            def flood(event: Payload, status: Payload) -> None:
                sent.append(event.raw)
                _publish(broker_url, settings, "loa-a", [event.raw], kind="events")
                _publish(broker_url, settings, "loa-a", [status.raw], kind="status")

            _publish(broker_url, settings, "loa-a", sent)
            flood()
            import_broadcast(engine, settings, tmp_path, ids, slot_in(3), clip(tmp_path, 0.5))
            wait_for(lambda: log_count(engine, "played") >= 2, 60, "both players' plays recorded")
    finally:
        group.stop()
    assert [plays(group, pid) for pid in ids] == [1, 1]
    assert log_count(engine, "played") == 2


settings_no_shrink = settings(phases=[Phase.explicit, Phase.generate], max_examples=15)


def _publish(
    broker_url: str, settings: Settings, player: str, payloads: list[bytes], kind: str = "events"
) -> None:
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    topic = topics.events(player) if kind == "events" else topics.status(player)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:8]}")
    address = parse_broker_url(broker_url)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        for raw in payloads:
            client.publish(topic, raw, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _delivery(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(select(Delivery.id).where(Delivery.state.in_(["sent", "delivered"])))


def _seen_since(engine: Engine, when: datetime) -> bool:
    with engine.connect() as conn:
        seen = conn.scalar(select(PlayerStatus.last_seen))
    return seen is not None and _utc(seen) >= when - timedelta(seconds=1)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)
