"""Memory at scale: `coso serve` with 100,000 endpoints, idle and with a 100,000-delivery
fan-out in flight; the resident memory of all its processes, next to the goal.

    python -m bench.memory [--players 50000] [--sms 50000] [--sms-rate 100] [--window 60]
        [--settle 20] [--database-url postgresql://...] [--events-process auto] [--keep DIR]

The endpoints: --players loudspeaker players (`loa-00001`…, never connected: offline) and
--sms SMS recipients, spread over the communes of one province. coso runs as `coso serve`
in its own process, with its defaults but for where things are: a broker this benchmark
starts (mosquitto on a free port, a service of its own as in production), and the local
Twilio-compatible gateway (tests/twilio_server.py, its own process) with status callbacks,
at --sms-rate segments per second so that the SMS stay in flight for the whole window.
From 500 players on, player events go to a process of their own (--events-process false:
a thread of coso serve): the resident memory is the sum over `coso serve` and every
process below it (psutil), sampled every 100 ms.

1. Idle: --settle seconds after `/healthz` reports every part well, with the endpoints and
   no schedule.
2. In flight: a plan is imported beside the running coso (an audio broadcast to every
   player and an SMS to every recipient of the province, at one slot 30 seconds ahead,
   valid for an hour); the timer finds it, fires both, fans them out to one delivery per
   endpoint and sends. The peak is taken from the import to --window seconds after the
   slot, and the deliveries' states at the end show what was still in flight.
Goal: at most 150 MB over all processes, idle and at the peak.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import Engine, text

from bench.fanout import scratch_database
from bench.footprint import COSO, RSS_GOAL, free_port, rss_mb, wait_healthy
from bench.sms import start_gateway
from channels.endpoints import add_endpoints
from channels.loudspeaker.mqtt import LocalBroker
from channels.sms.recipients import Recipient, save_recipients
from coso.clock import SystemClock
from coso.config import Settings, load_settings
from coso.setup import open_database
from coso.units import resolve_unit_codes
from schedules.importer import import_plan_file
from tests.loudspeakers import ZONE, clip
from tests.sms import e164
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
PROVINCE = "20"  # Lạng Sơn: its communes hold the endpoints
PLAN = "100/KH-MEMORY"
SAMPLE_EVERY = 0.1  # seconds between two samples of the resident memory
LEAD = 30.0  # seconds from the import to the slot (the timer reads new schedules every 5 s)
CLIP_SECONDS = 5.0


def config_text(
    work: Path, url: str, broker: str, gateway: str, port: int, rate: int, events: str
) -> str:
    """coso's defaults (batches, concurrency, events process "auto") but for where the
    database, broker and gateway are; no quiet hours, so that the SMS go out at any hour."""
    return f"""[database]
url = "{url}"
[media]
dir = "{work}/media"
[console]
secret_file = "{work}/session-secret"
[server]
public_url = "http://127.0.0.1:{port}"
[channels.loudspeaker]
topic_prefix = "bench-{uuid.uuid4().hex[:6]}/v1"
events_process = {events}
[channels.loudspeaker.broker]
url = "{broker}"
[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "{gateway}"
sender = "UBND VQuan"
rate_per_second = {rate}
quiet_start = "00:00"
quiet_end = "00:00"
"""


def add_endpoints_of(engine: Engine, players: int, sms: int) -> None:
    """The players and the recipients, spread over the province's communes."""
    communes = sorted(resolve_unit_codes(engine, [PROVINCE])[PROVINCE] - {PROVINCE})
    now = SystemClock().now()
    add_endpoints(
        engine,
        [
            {
                "channel": "loudspeaker",
                "address": f"loa-{n:05d}",
                "unit_code": communes[n % len(communes)],
            }
            for n in range(1, players + 1)
        ],
        now,
    )
    people = [
        Recipient(e164(n), f"Hộ {n}", communes[n % len(communes)], ("ho-dan",), n)
        for n in range(sms)
    ]
    save_recipients(engine, people, now)


def plan_text(audio: Path, slot: datetime, players: bool = True, sms: bool = True) -> str:
    """A broadcast to every player of the province and an SMS to every recipient, both at
    `slot`, valid for an hour (either left out with --players 0 or --sms 0)."""
    start = f"{slot.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}"
    text = f"""[plan]
number = "{PLAN}"
title = "Tuyên truyền bầu cử"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "loa"
kind = "audio"
title = "Bản tin bầu cử"
state = "approved"
audio = "{audio}"

[[content]]
key = "tin"
kind = "text"
title = "Nhắc đi bầu cử"
body = "Kính gửi {{{{ recipient.name }}}}: sáng Chủ nhật đi bầu cử tại nhà văn hóa thôn."
state = "approved"

"""
    if players:
        text += f"""
[[schedules]]
name = "Loa"
content = "loa"
channel = "loudspeaker"
targets = {{ units = ["{PROVINCE}"] }}
start = {start}
validity = "1h"
"""
    if sms:
        text += f"""
[[schedules]]
name = "Tin nhắn"
content = "tin"
channel = "sms"
targets = {{ units = ["{PROVINCE}"] }}
start = {start}
validity = "1h"
options = {{ khong_dau = true }}
"""
    return text


def states(engine: Engine) -> dict[str, dict[str, int]]:
    """Deliveries by channel and state."""
    found: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT channel, state, count(*) FROM delivery GROUP BY channel, state")
        ).all()
    for channel, state, n in rows:
        found.setdefault(channel, {})[state] = int(n)
    return found


def run(args: argparse.Namespace, work: Path, url: str) -> None:
    broker = LocalBroker().start()
    gateway_proc, gateway = start_gateway(callbacks=True)
    port = free_port()
    config = work / "coso.toml"
    events = '"auto"' if args.events_process == "auto" else args.events_process
    config.write_text(config_text(work, url, broker.url, gateway, port, args.sms_rate, events))
    settings: Settings = load_settings(config)
    engine = open_database(settings)
    began = time.monotonic()
    add_endpoints_of(engine, args.players, args.sms)
    audio = clip(work, CLIP_SECONDS)
    print(
        f"{args.players:,} loudspeaker players (offline) and {args.sms:,} SMS recipients "
        f"written in {time.monotonic() - began:.1f} s; "
        f"database: {engine.url.render_as_string(hide_password=True)}"
    )
    log_path = work / "coso.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
    env["COSO_CONFIG"] = str(config)
    serve = subprocess.Popen(
        [COSO, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
    )  # fmt: skip
    try:
        try:
            startup = wait_healthy(serve, port, 300, "coso serve")
        except SystemExit:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        print(f"coso serve: every part well after {startup:.1f} s")
        time.sleep(args.settle)
        root = psutil.Process(serve.pid)
        idle, idle_parts = rss_mb(root)
        measure_in_flight(args, work, engine, settings, root, idle, idle_parts, audio)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        gateway_proc.terminate()
        gateway_proc.wait(10)
        broker.stop()
        engine.dispose()


def measure_in_flight(
    args: argparse.Namespace,
    work: Path,
    engine: Engine,
    settings: Settings,
    root: psutil.Process,
    idle: float,
    idle_parts: list[str],
    audio: Path,
) -> None:
    slot = (SystemClock().now() + timedelta(seconds=LEAD)).replace(microsecond=0)
    (work / "plan.toml").write_text(
        plan_text(audio, slot, args.players > 0, args.sms > 0), encoding="utf-8"
    )
    import_plan_file(engine, settings, work / "plan.toml", SystemClock().now())
    if time.time() > slot.timestamp():
        print(f"the import ended {time.time() - slot.timestamp():.1f} s after the slot (late)")
    peak, peak_parts, peak_at, samples = 0.0, idle_parts, 0.0, 0
    end = max(slot.timestamp(), time.time()) + args.window
    fanned_out_at: float | None = None
    expected = args.players + args.sms
    next_count = 0.0
    while time.time() < end:
        total, parts = rss_mb(root)
        samples += 1
        if total > peak:
            peak, peak_parts, peak_at = total, parts, time.time() - slot.timestamp()
        if fanned_out_at is None and time.monotonic() >= next_count:
            next_count = time.monotonic() + 1.0
            created = sum(sum(s.values()) for s in states(engine).values())
            if created >= expected:
                fanned_out_at = time.time() - slot.timestamp()
        if root.status() == psutil.STATUS_ZOMBIE or not root.is_running():
            raise SystemExit(f"coso serve ended:\n{(work / 'coso.log').read_text()[-3000:]}")
        time.sleep(SAMPLE_EVERY)
    at_end = states(engine)
    report(args, idle, idle_parts, (peak, peak_at, peak_parts), samples, fanned_out_at, at_end)


def report(
    args: argparse.Namespace,
    idle: float,
    idle_parts: list[str],
    highest: tuple[float, float, list[str]],
    samples: int,
    fanned_out_at: float | None,
    at_end: dict[str, dict[str, int]],
) -> None:
    peak, peak_at, peak_parts = highest

    def verdict(mb: float) -> str:
        return "met" if mb <= RSS_GOAL else "NOT met"

    endpoints = args.players + args.sms
    print(f"idle coso serve, {endpoints:,} endpoints, all its processes: {idle:.0f} MB RSS")
    for part in idle_parts:
        print(f"  {part}")
    print(
        f"in flight, {endpoints:,} deliveries: peak {peak:.0f} MB RSS, {peak_at:+.1f} s from "
        f"the slot (highest of {samples} samples every {SAMPLE_EVERY * 1000:.0f} ms, from the "
        f"import to {args.window:.0f} s after the slot)"
    )
    for part in peak_parts:
        print(f"  {part}")
    made = sum(sum(s.values()) for s in at_end.values())
    when = f"{fanned_out_at:.1f} s after the slot" if fanned_out_at is not None else "not all"
    print(f"deliveries created: {made:,} of {endpoints:,} ({when})")
    for channel, counts in sorted(at_end.items()):
        shown = ", ".join(f"{state} {n:,}" for state, n in sorted(counts.items()))
        print(f"  {channel} at the end: {shown}")
    print(
        f"idle {idle:.0f} MB, in flight {peak:.0f} MB (+{peak - idle:.0f} MB); "
        f"goal <= {RSS_GOAL} MB: idle {verdict(idle)}, in flight {verdict(peak)}"
    )


@contextlib.contextmanager
def database(server_url: str | None, work: Path) -> Iterator[str]:
    if server_url is None:
        yield f"sqlite:///{work / 'coso.db'}"
        return
    with scratch_database(server_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=50_000)
    parser.add_argument("--sms", type=int, default=50_000)
    parser.add_argument("--sms-rate", type=int, default=100, help="SMS segments per second")
    parser.add_argument("--window", type=float, default=60.0, help="seconds after the slot")
    parser.add_argument("--settle", type=float, default=20.0, help="idle seconds before")
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument(
        "--events-process",
        choices=("auto", "true", "false"),
        default="auto",
        help="channels.loudspeaker.events_process (auto: a process of its own from 500 players)",
    )
    parser.add_argument("--keep", default="", help="keep the database and coso's log here")
    args = parser.parse_args()
    with (
        contextlib.nullcontext(args.keep)
        if args.keep
        else tempfile.TemporaryDirectory(prefix="coso-memory-")
    ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with database(args.database_url, work) as url:
            run(args, work, url)


if __name__ == "__main__":
    main()
