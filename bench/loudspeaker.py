"""One broadcast to N simulated players (in a separate process): time from the occurrence
firing to N `played` entries in the activity log; next to a raw paho-mqtt baseline in the
same run (publish the same N commands at QoS 1, receive N replies from a separate process).

    python -m bench.loudspeaker --players 10000 [--broker mqtt://127.0.0.1:1883]

Without --broker it starts its own mosquitto on a free port, configured as
docs/operations.md recommends (no per-client queue limit to drop bursts of events).
"""

from __future__ import annotations

import argparse
import os
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
from sqlalchemy import func, select

from channels.devices import PlayerStatus
from channels.mqtt import LocalBroker, parse_broker_url
from coso.clock import SystemClock
from coso.config import load_settings
from coso.setup import open_database
from dispatcher.models import ActivityEntry, Delivery
from tests.loudspeakers import clip, import_broadcast, running_coso

ROOT = Path(__file__).resolve().parent.parent
CLIP_SECONDS = 0.5  # the shortest clip coso accepts; players play it in real time
INFLIGHT = 200  # QoS 1 commands awaiting the broker's PUBACK, at most (coso and raw alike)


def _count(engine, query) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.scalar(query) or 0


# Stage → delivery states that say it is done for a delivery (with --timeline).
STAGES = {
    "all deliveries created": None,
    "all commands sent": ("sent", "delivered", "played"),
    "all received": ("delivered", "played"),
    "all played": ("played",),
}


def _in_states(states: tuple[str, ...] | None):  # type: ignore[no-untyped-def]
    """A count that the delivery index answers (channel, state), cheap to poll; a delivery's
    state and its log entry are written in one transaction, so `played` deliveries and
    `played` log entries are the same count at every instant."""
    query = select(func.count()).select_from(Delivery).where(Delivery.channel == "loudspeaker")
    return query if states is None else query.where(Delivery.state.in_(states))


def _mark(engine, marks: dict[str, float], players: int, at: float) -> None:  # type: ignore[no-untyped-def]
    for name, states in STAGES.items():
        if name not in marks and _count(engine, _in_states(states)) >= players:
            marks[name] = at


def bench_coso(
    players: int, broker_url: str, work: Path, timeline: bool = False
) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}/v1"
    settings = load_settings(
        None,
        database={"url": f"sqlite:///{work}/coso.db"},
        media={"dir": str(work / "media")},
        dispatcher={"claim_batch": 1000, "fanout_batch": 5000, "idle_poll": 0.05},
        channels={
            "loudspeaker": {
                "broker": {"url": broker_url},
                "topic_prefix": prefix,
                "client_id": f"coso-bench-{uuid.uuid4().hex[:6]}",
                "max_inflight": INFLIGHT,
                "rate_per_second": 1_000_000,
            }
        },
    )
    engine = open_database(settings)
    ids = [f"loa-{n:05d}" for n in range(1, players + 1)]
    slot = (SystemClock().now() + timedelta(seconds=40 + players / 500)).replace(microsecond=0)
    import_broadcast(engine, settings, work, ids, slot, clip(work, CLIP_SECONDS))
    env = {
        **os.environ,
        "COSO_MEDIA__DIR": settings.media.dir,
        "COSO_CHANNELS__LOUDSPEAKER__TOPIC_PREFIX": prefix,
    }
    simulator = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "players", "simulate", "--count", str(players),
         "--id-format", "loa-{n:05d}", "--broker", broker_url, "--data", str(work / "players")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "sim.log").open("wb"),
    )  # fmt: skip
    played = select(func.count()).select_from(ActivityEntry).where(ActivityEntry.event == "played")
    online = select(func.count()).select_from(PlayerStatus).where(PlayerStatus.online.is_(True))
    try:
        with running_coso(engine, settings):
            while _count(engine, online) < players:
                if time.time() > slot.timestamp() - 2:
                    raise SystemExit(
                        f"only {_count(engine, online)} players online before the slot"
                    )
                time.sleep(0.2)
            while time.time() < slot.timestamp():
                time.sleep(0.01)
            marks: dict[str, float] = {}
            done = _in_states(("played",))
            while _count(engine, done) < players:
                if timeline:
                    _mark(engine, marks, players, time.time() - slot.timestamp())
                time.sleep(0.02)
            elapsed = time.time() - slot.timestamp()
            logged = _count(engine, played)
            if logged != players:
                raise SystemExit(f"{players} deliveries played but {logged} played log entries")
            for name, at in marks.items():
                print(f"  {name}: {at:.2f} s after the slot")
    finally:
        simulator.terminate()
        simulator.wait(10)
    return elapsed, elapsed - CLIP_SECONDS


def responder(broker_url: str, prefix: str) -> None:
    """The raw baseline's far side: answer every command on its reply topic."""
    address = parse_broker_url(broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-resp-{uuid.uuid4().hex[:6]}")
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


def bench_raw(players: int, broker_url: str) -> float:
    prefix = f"raw-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loudspeaker", "--respond", prefix, "--broker", broker_url],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    address = parse_broker_url(broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:6]}")
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
    start = time.perf_counter()
    infos = [client.publish(f"{prefix}/loa-{n:05d}/cmd", payload, qos=1) for n in range(players)]
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
    parser.add_argument("--respond", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.respond:
        responder(args.broker, args.respond)
        return
    broker = None
    url = args.broker
    if not url:  # a mosquitto set up as docs/operations.md recommends, on a free port
        broker = LocalBroker().start()
        url = broker.url
    try:
        with tempfile.TemporaryDirectory(prefix="coso-bench-") as tmp:
            raw = bench_raw(args.players, url)
            total, less_clip = bench_coso(args.players, url, Path(tmp), args.timeline)
    finally:
        if broker is not None:
            broker.stop()
    print(f"broker: {url}")
    print(f"raw paho-mqtt: {args.players:,} commands out, {args.players:,} replies in: {raw:.2f} s")
    print(
        f"coso: slot to {args.players:,} played entries in the log: {total:.2f} s "
        f"({less_clip:.2f} s without the {CLIP_SECONDS} s the clip plays)"
    )
    print(f"coso / raw: {total / raw:.2f}x ({less_clip / raw:.2f}x without playback time)")


if __name__ == "__main__":
    main()
