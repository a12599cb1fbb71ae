"""Player events and status that break the protocol, or the database, or the clock: each is
refused alone (logged, kept as its player's last failure), and every other event, in the
same message or later, is still recorded."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from channels.endpoints import Endpoint
from channels.loudspeaker import protocol as p
from channels.loudspeaker.channel import LoudspeakerChannel
from channels.loudspeaker.devices import list_players
from channels.loudspeaker.mqtt import parse_broker_url
from channels.loudspeaker.mqtt_loop import NetworkLoop
from channels.loudspeaker.settings import LoudspeakerSettings
from channels.registry import settings_of
from coso.clock import SystemClock, as_utc
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from tests.helpers import wait_for
from tests.loudspeakers import clip, import_broadcast, running_coso, slot_in, speaker_settings

NOW = "2030-01-01T00:00:00Z"


# --- reading: one bad record refuses itself only -------------------------------------


@pytest.mark.parametrize(
    ("record", "named"),
    [
        (
            {"type": "finished", "delivery_id": 2**70, "at": NOW},
            "delivery_id = 1180591620717411303424",
        ),
        ({"type": "finished", "delivery_id": True, "at": NOW}, "delivery_id = True"),
        ({"type": "finished", "delivery_id": 1.0, "at": NOW}, "delivery_id = 1.0"),
        (
            {"type": "finished", "slot": f"{2**70}@{NOW}", "at": NOW},
            "slot = '1180591620717411303424@",
        ),
        ({"type": "finished", "slot": "x" * 1_000_000, "at": NOW}, "slot = 'xxxx"),
        ({"type": "finished", "slot": "7@0001-01-01T00:00:00+05:00", "at": NOW}, "slot = "),
        ({"type": "received", "delivery_id": 5, "at": "0001-01-01T00:00:00+05:00"}, "at = "),
        ({"type": "received", "delivery_id": 5, "at": "9999-12-31T23:59:59-05:00"}, "at = "),
        (
            {"type": "finished", "delivery_id": 5, "at": NOW, "started_at": "x" * 10**6},
            "started_at",
        ),
    ],
)
def test_a_bad_record_is_refused_naming_its_field_and_the_others_are_read(
    record: dict[str, Any], named: str
) -> None:
    good = {"type": "finished", "delivery_id": 7, "slot": f"3@{NOW}", "at": NOW}
    payload = p.decode(p.encode({"type": p.BATCH, "records": [good, record, good]}))
    events, errors = p.read_events(payload)
    assert [e.delivery_id for e in events] == [7, 7]
    assert len(errors) == 1
    message = str(errors[0])
    assert message.startswith("events record 2: ") and named in message
    assert len(message) < 200  # a megabyte of slot is not repeated in the log


def test_failure_reasons_are_kept_short_and_storable() -> None:
    events, errors = p.read_events(
        {"v": 1, "type": "failed", "delivery_id": 3, "at": NOW, "reason": "a\x00b\ud800" * 1000}
    )
    assert not errors
    reason = events[0].reason or ""
    assert len(reason) <= p.MAX_TEXT and "\x00" not in reason
    reason.encode("utf-8")  # no lone surrogate: PostgreSQL takes it


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"v":1,"a":' * 50_000, b'{"v": 1, "x": ' + b"[" * 17 + b"]" * 17 + b"}"],
)
def test_deep_json_is_refused_before_parsing(raw: bytes) -> None:
    with pytest.raises(p.ProtocolError, match="nested more than 16 deep"):
        p.decode(raw)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    payload = {"type": "failed", "reason": "[[[[{{{{" * 100 + '\\"[', "records": [[[1]]]}
    assert p.decode(p.encode(payload))["reason"] == payload["reason"]


def test_a_payload_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(p.ProtocolError, match="payload of 300000 bytes: more than the 262144"):
        p.decode(b" " * 300_000, 256 * 1024)


# --- the network loop ------------------------------------------------------------------


def test_a_callback_that_raises_does_not_end_the_network_loop(broker_url: str) -> None:
    address = parse_broker_url(broker_url)
    topic = f"coso-test-{uuid.uuid4().hex[:8]}/loop"
    seen: list[bytes] = []
    subscribed = threading.Event()
    connects: list[int] = []

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload == b"boom":
            raise RuntimeError("a bug in a callback")
        seen.append(message.payload)

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        connects.append(1)
        client.subscribe(topic, 1)

    loop = NetworkLoop("test-loop").start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"loop-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect_async(address.host, address.port, keepalive=5)
    loop.add(client)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"send-{uuid.uuid4().hex[:8]}")
    try:
        assert subscribed.wait(10)
        wait_for(lambda: loop.alive, 10, "the loop to complete a round")
        sender.connect(address.host, address.port)
        sender.loop_start()
        sender.publish(topic, b"boom", qos=1).wait_for_publish(5)
        # paho may have read half a packet: the client's connection is made again
        wait_for(lambda: len(connects) == 2, 30, "the client connected again")
        sender.publish(topic, b"after", qos=1).wait_for_publish(5)
        wait_for(lambda: b"after" in seen, 30, "the message after the failing one")
        assert loop.alive
    finally:
        sender.loop_stop()
        sender.disconnect()
        loop.stop()
    assert not loop.alive


def _publisher(broker_url: str) -> mqtt.Client:
    address = parse_broker_url(broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:8]}")
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def _send(client: mqtt.Client, topic: str, payload: bytes | dict[str, Any]) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps({"v": 1, **payload}).encode()
    client.publish(topic, raw, qos=1).wait_for_publish(10)


def test_deep_or_huge_messages_are_refused_acknowledged_and_the_loop_goes_on(
    broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    cfg = LoudspeakerSettings(
        broker={"url": broker_url, "keepalive": 5},  # type: ignore[arg-type]
        topic_prefix=f"coso-test-{uuid.uuid4().hex[:8]}/v1",
        client_id=f"coso-test-{uuid.uuid4().hex[:8]}",
    )
    topics = p.Topics(cfg.topic_prefix)
    now = SystemClock().now

    def channel() -> LoudspeakerChannel:
        ch = LoudspeakerChannel(cfg, broker_url, "http://coso.invalid", now, role="events")
        assert ch.wait_subscribed(10)
        return ch

    def next_event(ch: LoudspeakerChannel) -> dict[str, Any]:
        items = ch.take_inbound(1, 30)
        assert items, "no message came through"
        return items[0].payload

    first = channel()
    sender = _publisher(broker_url)
    try:
        _send(sender, topics.events("loa-a"), b"[" * 100_000)
        _send(sender, topics.status("loa-a"), b'{"v":1,"state":' + b"{" * 100_000)
        _send(sender, topics.events("loa-a"), b'{"v":1,"slot":"' + b"x" * 1_000_000 + b'"}')
        _send(sender, topics.events("loa-a"), {"type": "received", "delivery_id": 1, "at": NOW})
        assert next_event(first)["delivery_id"] == 1
        assert first.loop.alive
        refusals = [r.getMessage() for r in caplog.records if "ignored a message" in r.getMessage()]
        assert len(refusals) == 3
        assert any("nested more than 16 deep" in r for r in refusals)
        assert any("1000017 bytes: more than the 262144 allowed" in r for r in refusals)
        first.close()
        # Its session is persistent: what it refused was acknowledged, so the broker does
        # not deliver it again (it would come before anything sent after the reconnect).
        caplog.clear()
        again = channel()
        try:
            _send(sender, topics.events("loa-a"), {"type": "received", "delivery_id": 2, "at": NOW})
            assert next_event(again)["delivery_id"] == 2
            assert not [r for r in caplog.records if "ignored a message" in r.getMessage()]
        finally:
            again.close()
    finally:
        sender.loop_stop()
        sender.disconnect()
        first.close()


# --- through coso: the others are recorded ---------------------------------------------


def _deliveries(engine: Engine) -> dict[str, Any]:
    """Player id → its delivery row."""
    E = Endpoint.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(Delivery.id, Delivery.schedule_id, Delivery.scheduled_for, E.c.address).join(
                E, E.c.id == Delivery.endpoint_id
            )
        ).all()
    return {r.address: r for r in rows}


def _finished(row: Any, at: datetime, **extra: Any) -> dict[str, Any]:
    slot = as_utc(row.scheduled_for)
    return p.event(
        p.FINISHED,
        at=at,
        delivery_id=row.id,
        slot=p.slot_key(row.schedule_id, slot),
        started_at=slot,
        **extra,
    )


def _states(engine: Engine) -> dict[str, str]:
    """Player id → the state of its delivery."""
    E = Endpoint.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(E.c.address, Delivery.state).join(E, E.c.id == Delivery.endpoint_id)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def test_out_of_range_values_are_refused_alone_and_the_other_plays_are_recorded(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """An id beyond 64 bits, a slot's schedule id beyond 64 bits, a time that overflows in
    UTC, `delivery_id: true`, 200 kB of slot: each between good events (in the same batch,
    and in messages before and after), in the events process as at scale."""
    settings = speaker_settings(settings, broker_url, tmp_path)  # events_process = true
    ids = ["loa-a", "loa-b", "loa-c", "loa-d"]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(1), clip(tmp_path, 0.6))
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    with running_coso(engine, settings):
        wait_for(lambda: len(_states(engine)) == 4, 30, "the four deliveries")
        wait_for(lambda: set(_states(engine).values()) == {"sent"}, 30, "the commands sent")
        rows = _deliveries(engine)
        # the player of the lowest delivery id only says `delivery_id: true`
        silent = min(rows, key=lambda pid: rows[pid].id)
        first, second, third = (pid for pid in ids if pid != silent)
        now = SystemClock().now()
        at, huge, year_one = p.stamp(now), 2**70, "0001-01-01T00:00:00+05:00"
        sender = _publisher(broker_url)
        try:
            batch = [
                {"type": "received", "delivery_id": rows[first].id, "at": year_one},
                _finished(rows[first], now),
                {"type": "finished", "delivery_id": huge, "at": at},
            ]
            _send(sender, topics.events(first), {"type": p.BATCH, "records": batch})
            _send(
                sender,
                topics.events(second),
                {"type": "finished", "slot": f"{huge}@{at}", "at": at},
            )
            _send(
                sender, topics.events(silent), {"type": "finished", "delivery_id": True, "at": at}
            )
            _send(
                sender, topics.events(silent), {"type": "started", "slot": "9" * 200_000, "at": at}
            )
            _send(sender, topics.status(third), {"state": "online", "at": year_one})
            _send(sender, topics.events(second), _finished(rows[second], now))
            _send(sender, topics.events(third), _finished(rows[third], now))
            wait_for(
                lambda: [_states(engine)[pid] for pid in (first, second, third)] == ["played"] * 3,
                40,
                "the three good plays recorded",
            )
        finally:
            sender.loop_stop()
            sender.disconnect()
    assert _states(engine)[silent] == "sent"
    devices = {r.address: r for r in list_players(engine)}
    assert "1180591620717411303424" in (devices[first].last_failure or "")
    assert "slot = '1180591620717411303424@" in (devices[second].last_failure or "")
    assert devices[third].online and devices[third].status_at is not None
    assert "slot = '9999" in (devices[silent].last_failure or "")
    assert all(len(r.last_failure or "") <= p.MAX_TEXT for r in devices.values())
    assert not devices[silent].playing
    with engine.connect() as conn:
        details = conn.scalars(select(ActivityEntry.detail)).all()
    assert all(len(d or "") < 1000 for d in details)


def test_a_message_the_database_refuses_is_refused_alone_and_not_retried_for_ever(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defence in depth: an event that passes every check but fails when applied (here a
    fault put in the engine for one delivery) is refused alone, once; the events before,
    beside and after it are recorded."""
    caplog.set_level(logging.WARNING)
    settings = speaker_settings(settings, broker_url, tmp_path, events_process=False)
    ids = ["loa-a", "loa-b", "loa-c", "loa-d"]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(1), clip(tmp_path, 0.6))
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    with running_coso(engine, settings) as dispatcher:
        wait_for(lambda: len(_states(engine)) == 4, 30, "the four deliveries")
        wait_for(lambda: set(_states(engine).values()) == {"sent"}, 30, "the commands sent")
        rows = _deliveries(engine)
        poison = rows["loa-b"].id
        service = dispatcher.services["loudspeaker"]
        real = service.host.receive_in  # type: ignore[attr-defined]

        def receive_in(conn: Any, outcomes: Any) -> Any:
            if any(o.delivery_id == poison for o in outcomes):
                raise RuntimeError(f"cannot apply delivery {poison}")
            return real(conn, outcomes)

        service.host.receive_in = receive_in  # type: ignore[attr-defined]
        now = SystemClock().now()
        sender = _publisher(broker_url)
        try:
            for pid in ("loa-a", "loa-b", "loa-c"):
                _send(sender, topics.events(pid), _finished(rows[pid], now))
            wait_for(
                lambda: _states(engine)["loa-a"] == _states(engine)["loa-c"] == "played",
                30,
                "the plays beside the poison recorded",
            )
            _send(sender, topics.events("loa-d"), _finished(rows["loa-d"], now))
            wait_for(lambda: _states(engine)["loa-d"] == "played", 30, "the play after it")
        finally:
            sender.loop_stop()
            sender.disconnect()
    assert _states(engine)["loa-b"] == "sent"
    refused = [r for r in caplog.records if "could not be applied" in r.getMessage()]
    assert len(refused) == 1 and "loa-b" in refused[0].getMessage()
    device = {r.address: r for r in list_players(engine)}["loa-b"]
    assert f"cannot apply delivery {poison}" in (device.last_failure or "")


def test_player_times_outside_what_can_be_true_are_moved_to_the_bound_and_logged(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A play cannot start before its command's not_before, nor anything happen after coso
    received its report (give or take clock_skew)."""
    caplog.set_level(logging.WARNING)
    settings = speaker_settings(settings, broker_url, tmp_path, events_process=False)
    import_broadcast(
        engine, settings, tmp_path, ["loa-a", "loa-b"], slot_in(1), clip(tmp_path, 0.6)
    )
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    with running_coso(engine, settings):
        wait_for(lambda: len(_states(engine)) == 2, 30, "the two deliveries")
        wait_for(lambda: set(_states(engine).values()) == {"sent"}, 30, "the commands sent")
        rows = _deliveries(engine)
        epoch = p.parse_time("1970-01-01T00:00:00Z", "t")
        far = p.parse_time("9999-12-31T00:00:00Z", "t")
        assert epoch is not None and far is not None
        sender = _publisher(broker_url)
        try:
            a, b = rows["loa-a"], rows["loa-b"]
            _send(
                sender,
                topics.events("loa-a"),
                p.event(
                    p.FINISHED,
                    at=epoch,
                    delivery_id=a.id,
                    slot=p.slot_key(a.schedule_id, as_utc(a.scheduled_for)),
                    started_at=epoch,
                ),
            )
            # no slot named: coso looks up the command's not_before
            _send(sender, topics.events("loa-b"), p.event(p.RECEIVED, at=far, delivery_id=b.id))
            _send(sender, topics.events("loa-b"), p.event(p.FINISHED, at=epoch, delivery_id=b.id))
            sent_by = SystemClock().now()
            wait_for(lambda: set(_states(engine).values()) == {"played"}, 30, "both plays recorded")
        finally:
            sender.loop_stop()
            sender.disconnect()
    with engine.connect() as conn:
        entries = conn.execute(
            select(
                ActivityEntry.delivery_id,
                ActivityEntry.event,
                ActivityEntry.at,
                ActivityEntry.detail,
            ).where(ActivityEntry.event.in_(["played", "received"]))
        ).all()
    by = {(e.delivery_id, e.event): e for e in entries}
    for row in (a, b):
        played = by[(row.id, "played")]
        assert as_utc(played.at) == as_utc(row.scheduled_for)  # its not_before, not 1970
        assert "the player's clock is off: it said" in played.detail
        assert "1970-01-01T00:00:00.000Z" in played.detail
    received = by[(b.id, "received")]
    assert as_utc(received.at) <= sent_by + timedelta(minutes=2)
    assert "9999-12-31" in received.detail
    warnings = [r.getMessage() for r in caplog.records if "clock is off" in r.getMessage()]
    assert any("player loa-a" in w and "behind" in w for w in warnings)
    assert any("player loa-b" in w and "ahead" in w for w in warnings)


def test_messages_wait_while_the_database_does_not_answer_and_are_applied_after(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusing a message alone is for a message the database refuses while it answers:
    while it does not answer at all, nothing is refused, and all is applied once it does."""
    settings = speaker_settings(settings, broker_url, tmp_path, events_process=False)
    ids = ["loa-a", "loa-b"]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(1), clip(tmp_path, 0.6))
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    with running_coso(engine, settings) as dispatcher:
        wait_for(lambda: set(_states(engine).values()) == {"sent"}, 30, "the commands sent")
        rows = _deliveries(engine)
        service: Any = dispatcher.services["loudspeaker"]
        real = service.host.receive_in
        down = threading.Event()
        down.set()
        failed: list[int] = []

        def receive_in(conn: Any, outcomes: Any) -> Any:
            if down.is_set():
                failed.append(len(outcomes))
                raise ConnectionError("the database does not answer")
            return real(conn, outcomes)

        monkeypatch.setattr(service.host, "receive_in", receive_in)
        monkeypatch.setattr(service, "_database_answers", lambda: not down.is_set())
        now = SystemClock().now()
        sender = _publisher(broker_url)
        try:
            for pid in ids:
                _send(sender, topics.events(pid), _finished(rows[pid], now))
            wait_for(lambda: len(failed) >= 3, 30, "a few attempts while the database is down")
            down.clear()
            wait_for(lambda: set(_states(engine).values()) == {"played"}, 30, "both recorded")
        finally:
            sender.loop_stop()
            sender.disconnect()
    assert not any(r.last_failure for r in list_players(engine))


@pytest.mark.parametrize("player", ["loa-1\n", "loa 1", "", "x" * 65, "loa/1", "loa+"])
def test_a_player_id_that_is_not_one_is_refused(player: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.check_player_id(player)
