"""One broadcast to N simulated players (in a separate process): time from the occurrence
firing to N `played` entries in the activity log; next to a raw paho-mqtt baseline in the
same run (publish the same N commands at QoS 1, receive N replies from a separate process).
The baseline speaks coso's protocol version, and over MQTT 5 its commands carry the same
three properties (message expiry, response topic, correlation data); `--raw-mqtt 3.1.1`
runs it without them.

    python -m bench.loudspeaker --players 10000 [--broker mqtt://127.0.0.1:1883] [--timeline]
        [--keep DIR] [--raw-mqtt 3.1.1] [--cue-ahead 0s]

coso runs as `coso serve` in its own process; this one only watches the database.
Without --broker it starts its own mosquitto on a free port, configured as
docs/operations.md recommends (no per-client queue limit to drop bursts of events).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from channels.loudspeaker.mqtt import (
    LocalBroker,
    PackedProperties,
    broker_protocol,
    parse_broker_url,
)
from channels.loudspeaker.settings import BrokerSettings
from coso.clock import SystemClock
from coso.config import load_settings
from coso.setup import open_database
from tests.loudspeakers import clip, import_broadcast

ROOT = Path(__file__).resolve().parent.parent
CLIP_SECONDS = 0.5  # the shortest clip coso accepts; players play it in real time
RAW_RUNS = 3  # the baseline varies from run to run on a shared machine: its median counts
INFLIGHT = 200  # QoS 1 commands awaiting the broker's PUBACK, at most (coso and raw alike)


# Stage → delivery states that say it is done for a delivery (with --timeline).
STAGES: dict[str, tuple[str, ...] | None] = {
    "all deliveries created": None,
    "all commands sent": ("sent", "delivered", "played"),
    "all received": ("delivered", "played"),
    "all played": ("played",),
}
ONLINE = "SELECT count(*) FROM player_status WHERE online"
PLAYED_LOG = "SELECT count(*) FROM activity_entry WHERE event = 'played'"


def _in_states(states: tuple[str, ...] | None) -> str:
    """A count that the delivery index answers (channel, state), cheap to poll; a delivery's
    state and its log entry are written in one transaction, so `played` deliveries and
    `played` log entries are the same count at every instant."""
    query = "SELECT count(*) FROM delivery WHERE channel = 'loudspeaker'"
    if states is None:
        return query
    return query + " AND state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def bench_coso(
    players: int,
    broker_url: str,
    work: Path,
    timeline: bool = False,
    events: str = "auto",
    cue_ahead: str = "",
) -> tuple[float, float]:
    """`coso serve` in its own process, as deployed; this process only watches the database
    (plain sqlite3 reads, which never block coso's writes)."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}/v1"
    config = work / "coso.toml"
    config.write_text(
        f"""[database]
url = "sqlite:///{work}/coso.db"
[media]
dir = "{work}/media"
[dispatcher]
claim_batch = 1000
fanout_batch = 5000
[channels.loudspeaker]
topic_prefix = "{prefix}"
client_id = "coso-bench-{uuid.uuid4().hex[:6]}"
max_inflight = {INFLIGHT}
rate_per_second = 1000000
events_process = {'"auto"' if events == "auto" else events}
{f'cue_ahead = "{cue_ahead}"' if cue_ahead else ""}
[channels.loudspeaker.broker]
url = "{broker_url}"
"""
    )
    settings = load_settings(config)
    engine = open_database(settings)
    ids = [f"loa-{n:05d}" for n in range(1, players + 1)]
    slot = (SystemClock().now() + timedelta(seconds=40 + players / 500)).replace(microsecond=0)
    import_broadcast(engine, settings, work, ids, slot, clip(work, CLIP_SECONDS))
    engine.dispose()
    env = {**os.environ, "COSO_CONFIG": str(config)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    coso = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "coso.log").open("wb"),
    )  # fmt: skip
    env["COSO_CHANNELS__LOUDSPEAKER__TOPIC_PREFIX"] = prefix
    env["COSO_SERVER__PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    simulator = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "players", "simulate", "--count", str(players),
         "--id-format", "loa-{n:05d}", "--broker", broker_url, "--data", str(work / "players")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "sim.log").open("wb"),
    )  # fmt: skip
    db = sqlite3.connect(f"file:{work}/coso.db?mode=ro", uri=True, timeout=30)

    def count(sql: str) -> int:
        return db.execute(sql).fetchone()[0]

    try:
        while count(ONLINE) < players:
            for proc, name in ((coso, "coso.log"), (simulator, "sim.log")):
                if proc.poll() is not None:
                    raise SystemExit(f"{name} ended early:\n{(work / name).read_text()[-2000:]}")
            if time.time() > slot.timestamp() - 2:
                raise SystemExit(f"only {count(ONLINE)} players online before the slot")
            time.sleep(0.2)
        while time.time() < slot.timestamp():
            time.sleep(0.005)
        marks: dict[str, float | None] = {}
        first = True
        while True:
            at = time.time() - slot.timestamp()
            if timeline:
                for name, states in STAGES.items():
                    if name not in marks and count(_in_states(states)) >= players:
                        marks[name] = None if first else at  # None: done before the slot
            first = False
            if count(_in_states(("played",))) >= players:
                break
            time.sleep(0.01)
        elapsed = at
        logged = count(PLAYED_LOG)
        if logged != players:
            raise SystemExit(f"{players} deliveries played but {logged} played log entries")
        for name, mark in marks.items():
            when = "before the slot" if mark is None else f"{mark:.2f} s after the slot"
            print(f"  {name}: {when}")
    finally:
        db.close()
        for proc in (simulator, coso):
            proc.terminate()
            proc.wait(15)
    return elapsed, elapsed - CLIP_SECONDS


def responder(broker_url: str, prefix: str) -> None:
    """The raw baseline's far side: answer every command on its reply topic."""
    address = parse_broker_url(broker_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"raw-resp-{uuid.uuid4().hex[:6]}",
        protocol=raw_protocol(broker_url),
    )
    client.max_inflight_messages_set(100)

    def on_message(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        c.publish(m.topic.replace("/cmd", "/events"), m.payload[:120], qos=1)

    client.on_message = on_message
    client.on_connect = lambda c, *_: (
        c.subscribe(f"{prefix}/+/cmd", 1),
        print("ready", flush=True),
    )
    client.connect(address.host, address.port)
    client.loop_forever()


def raw_protocol(broker_url: str) -> int:
    """MQTT 5 where the broker speaks it, as coso does (COSO_BENCH_RAW_MQTT=3.1.1: the
    baseline without MQTT 5 and its properties, for comparison)."""
    if os.environ.get("COSO_BENCH_RAW_MQTT") == "3.1.1":
        return mqtt.MQTTv311
    address = parse_broker_url(broker_url)
    return broker_protocol(address, BrokerSettings(url=broker_url))


def bench_raw(players: int, broker_url: str) -> float:
    prefix = f"raw-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loudspeaker", "--respond", prefix, "--broker", broker_url],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    address = parse_broker_url(broker_url)
    protocol = raw_protocol(broker_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:6]}", protocol=protocol
    )
    client.max_inflight_messages_set(INFLIGHT)
    got = threading.Event()
    replies = [0]

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        replies[0] += 1
        if replies[0] >= players:
            got.set()

    client.on_message = on_message
    client.connect(address.host, address.port)
    client.subscribe(f"{prefix}/+/events", 1)
    client.loop_start()
    time.sleep(0.5)
    payload = b'{"v":1,"type":"play","delivery_id":123456,"media":{"url":"http://x/media/' + (
        b"0" * 64 + b'.mp3","sha256":"' + b"0" * 64 + b'","duration":0.5}}'
    )
    # The properties coso's commands carry over MQTT 5, built and encoded before the clock
    # starts (paho checks every name it is given, and encodes them again at each publish).
    properties: list[Properties | None] = [None] * players
    if protocol == mqtt.MQTTv5:
        for n in range(players):
            built = Properties(PacketTypes.PUBLISH)
            built.MessageExpiryInterval = 3600
            built.ResponseTopic = f"{prefix}/loa-{n:05d}/events"
            built.CorrelationData = str(100000 + n).encode()
            properties[n] = PackedProperties(built.pack())
    start = time.perf_counter()
    infos = [
        client.publish(f"{prefix}/loa-{n:05d}/cmd", payload, qos=1, properties=properties[n])
        for n in range(players)
    ]
    for info in infos:
        info.wait_for_publish(30)
    got.wait(120)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    proc.terminate()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--broker", default="")
    parser.add_argument("--timeline", action="store_true", help="print when each stage ended")
    parser.add_argument("--keep", default="", help="keep coso's database and logs in this folder")
    parser.add_argument(
        "--raw-mqtt",
        choices=("same", "3.1.1"),
        default="same",
        help="the baseline's protocol: coso's (MQTT 5 where the broker has it) or 3.1.1",
    )
    parser.add_argument(
        "--events-process",
        choices=("auto", "true", "false"),
        default="auto",
        help="channels.loudspeaker.events_process: player events in a process of their own",
    )
    parser.add_argument(
        "--cue-ahead",
        default="",
        help='channels.loudspeaker.cue_ahead ("0s": commands at the slot); coso\'s default',
    )
    parser.add_argument("--respond", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_mqtt == "3.1.1":  # the responder process reads it too
        os.environ["COSO_BENCH_RAW_MQTT"] = "3.1.1"
    if args.respond:
        responder(args.broker, args.respond)
        return
    broker = None
    url = args.broker
    if not url:  # a mosquitto set up as docs/operations.md recommends, on a free port
        broker = LocalBroker().start()
        url = broker.url
    try:
        with (
            contextlib.nullcontext(args.keep)
            if args.keep
            else tempfile.TemporaryDirectory(prefix="coso-bench-")
        ) as tmp:
            Path(tmp).mkdir(parents=True, exist_ok=True)
            raws = [bench_raw(args.players, url) for _ in range(RAW_RUNS)]
            raw = statistics.median(raws)
            total, less_clip = bench_coso(
                args.players, url, Path(tmp), args.timeline, args.events_process, args.cue_ahead
            )
    finally:
        if broker is not None:
            broker.stop()
    version = "5" if raw_protocol(url) == mqtt.MQTTv5 else "3.1.1"
    print(f"broker: {url}; raw paho-mqtt speaks MQTT {version}")
    print(
        f"raw paho-mqtt: {args.players:,} commands out, {args.players:,} replies in: {raw:.2f} s "
        f"(median of {', '.join(f'{r:.2f}' for r in raws)})"
    )
    print(
        f"coso: slot to {args.players:,} played entries in the log: {total:.2f} s "
        f"({less_clip:.2f} s without the {CLIP_SECONDS} s the clip plays)"
    )
    print(f"coso / raw: {total / raw:.2f}x ({less_clip / raw:.2f}x without playback time)")


if __name__ == "__main__":
    main()
