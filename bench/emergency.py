"""One emergency to every channel of a commune — N simulated players, M SMS through the
local gateway at its rate, B web boards and the bulletin — timed per channel from the
emergency accepted (`declare` returned, in a process of its own) to the last endpoint
reached; next to, in the same run, a normal schedule slot of the same content to the same
endpoints, timed from the slot to the last endpoint reached.

    python -m bench.emergency [--players 1000] [--sms 10000] [--boards 100]
        [--sms-rate 100] [--database-url postgresql://...] [--broker mqtt://...] [--keep DIR]

"Reached" is what the emergency's progress page counts (docs/emergency.md): a delivery's
first entry in the activity log in a state that says it reached people — a player received
or played it, the gateway reported the SMS delivered, a screen displayed it, the bulletin
published it. Each time is read from the log after the run, so how often this process
looks does not change it.

coso runs as `coso serve` in its own process (on a new SQLite file, or a new database on
the PostgreSQL server of --database-url); the players (`coso players simulate`), the
screens (bench.boards) and the Twilio-compatible gateway (tests/twilio_server.py) each in a
process of their own. Without --broker it starts its own mosquitto on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from bench.boards import free_port, start_screens, wait_connected
from bench.fanout import scratch_database
from bench.sms import start_gateway
from channels.boards import devices
from channels.boards.pairing import digest
from channels.loudspeaker.mqtt import LocalBroker
from channels.sms.recipients import Recipient, save_recipients
from channels.states import PROVEN, STATES
from coso.clock import SystemClock, as_utc
from coso.config import Settings, load_settings
from coso.db import make_engine, write
from coso.setup import open_database
from dispatcher.emergency.progress import WAITING_STATES
from schedules.importer import import_plan_file
from tests.loudspeakers import ZONE, clip
from tests.sms import e164
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
UNIT = "06040"
CLIP_SECONDS = 0.5  # the shortest clip coso accepts; players play it in real time
NORMAL_PLAN = "1000/KH-BENCH"
TITLE = "Canh bao bao so 3"
# One SMS segment (GSM-7) with or without the emergency's reference before it: the rate
# counts segments, so both sends take the same number.
TEXT = "Bao so 3 do bo dem nay. Ba con o trong nha, tranh xa bo song, khong ra khoi."
CHANNELS = ("loudspeaker", "sms", "boards", "web")
LABELS = {"loudspeaker": "players", "sms": "SMS", "boards": "boards", "web": "bulletin"}
PROVEN_SQL = ", ".join(f"'{s}'" for s in PROVEN)
# What is timed, as states in the activity log: reached (as the progress page counts it),
# and the steps before it that the ratio alone would hide.
STEPS = {
    "reached": PROVEN_SQL,
    "received": "'delivered'",  # a player has the command (a normal slot may play before)
    "played": "'played'",
    "accepted": "'sent'",  # the gateway accepted the SMS
}


@dataclass(frozen=True)
class Reached:
    """A channel's deliveries of one plan that reached people, and when the last did."""

    count: int
    last: float  # seconds after the start


def settings_text(work: Path, url: str, broker: str, gateway: str, port: int, rate: int) -> str:
    return f"""[database]
url = "{url}"
[media]
dir = "{work}/media"
[server]
public_url = "http://127.0.0.1:{port}"
[dispatcher]
claim_batch = 1000
fanout_batch = 5000
idle_poll = 0.05
[channels.loudspeaker]
topic_prefix = "bench-{uuid.uuid4().hex[:6]}/v1"
client_id = "coso-bench-{uuid.uuid4().hex[:6]}"
# The normal slot it is compared with takes the path an emergency takes: fired at its time,
# not ahead of it (an emergency is never cued).
cue_ahead = "0s"
[channels.boards]
cue_ahead = "0s"
[channels.loudspeaker.broker]
url = "{broker}"
[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "{gateway}"
sender = "UBND VQuan"
rate_per_second = {rate}
concurrency = 16
timeout = 30.0
status_callbacks = true
quiet_start = "00:00"
quiet_end = "00:00"
daily_cap = 0
"""


def plan_text(players: int, sms: int, boards: int, audio: Path, slot: datetime) -> str:
    """The normal plan: the same words and a clip as long as the emergency's, one schedule
    per channel that has endpoints, every endpoint of the commune, at `slot`."""
    lines = [
        f'[plan]\nnumber = "{NORMAL_PLAN}"\ntitle = "Thông tin thường xuyên"\n'
        "period_start = 2021-01-01\nperiod_end = 2099-12-31\n",
        f'[[content]]\nkey = "loa"\nkind = "audio"\ntitle = "{TITLE}"\nstate = "approved"\n'
        f'audio = "{audio}"\n',
        f'[[content]]\nkey = "tin"\nkind = "text"\ntitle = "{TITLE}"\nbody = "{TEXT}"\n'
        'state = "approved"\n',
    ]
    addresses = (
        [("loudspeaker", f"loa-{n:05d}") for n in range(1, players + 1)]
        + [("boards", f"screen:b-{n:05d}") for n in range(1, boards + 1)]
        + [("web", f"bulletin:{UNIT}")]
    )
    for channel, address in addresses:
        lines.append(
            f'[[endpoints]]\nchannel = "{channel}"\naddress = "{address}"\nunit = "{UNIT}"\n'
        )
    local = slot.astimezone(ZONE)
    counts = {"loudspeaker": players, "sms": sms, "boards": boards, "web": 1}
    for channel in (c for c in CHANNELS if counts[c]):
        content = "loa" if channel == "loudspeaker" else "tin"
        lines.append(
            f'[[schedules]]\nname = "Tin {channel}"\ncontent = "{content}"\n'
            f'channel = "{channel}"\ntargets = {{ units = ["{UNIT}"] }}\n'
            f"start = {local:%Y-%m-%dT%H:%M:%S}\n"
            'validity = "1h"\nmisfire_grace = "10m"\n'
        )
    return "\n".join(lines)


def prepare(
    engine: Engine, settings: Settings, work: Path, players: int, sms: int, boards: int
) -> tuple[datetime, dict[str, str]]:
    """Recipients, the normal plan (its slot far enough ahead for everything to connect),
    the screens' tokens; (the slot, screen name → token)."""
    now = SystemClock().now()
    people = [Recipient(e164(n), f"CD {n}", UNIT, ("bench",), n) for n in range(sms)]
    save_recipients(engine, people, now)
    slot = (SystemClock().now() + timedelta(seconds=40 + players / 400 + boards / 20)).replace(
        microsecond=0
    )
    audio = clip(work, CLIP_SECONDS, 440)
    (work / "plan.toml").write_text(plan_text(players, sms, boards, audio, slot), encoding="utf-8")
    import_plan_file(engine, settings, work / "plan.toml", SystemClock().now())
    tokens = {f"b-{n:05d}": secrets.token_urlsafe(24) for n in range(1, boards + 1)}
    with write(engine) as conn:
        ids = dict(
            conn.exec_driver_sql("SELECT address, id FROM endpoint WHERE channel = 'boards'").all()
        )
        for name, token in tokens.items():
            devices.set_status(conn, [ids[f"screen:{name}"]], token_hash=digest(token))
    return slot, tokens


def plan_id(engine: Engine, number: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT id FROM plan WHERE number = :n"), {"n": number}))


def reached_now(engine: Engine, plan: int) -> dict[str, int]:
    """Per channel, the plan's deliveries in a state that reached people (cheap to poll)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT channel, count(*) FROM delivery WHERE plan_id = :p "
                f"AND state IN ({PROVEN_SQL}) GROUP BY channel"
            ),
            {"p": plan},
        ).all()
    return {channel: int(n) for channel, n in rows}


def states_now(engine: Engine, plan: int) -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT channel, state, count(*) FROM delivery WHERE plan_id = :p "
                "GROUP BY channel, state"
            ),
            {"p": plan},
        ).all()
    found: dict[str, dict[str, int]] = {}
    for channel, state, n in rows:
        found.setdefault(channel, {})[state] = int(n)
    return found


def lost(engine: Engine, plan: int) -> list[str]:
    """The plan's deliveries that will not reach anyone on their own (failed, expired,
    outcome unknown…), each with its last error: the run fails at once, naming them."""
    final = ", ".join(f"'{s}'" for s in STATES if s not in PROVEN + WAITING_STATES)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.channel, e.address, d.state, d.last_error FROM delivery d "
                "JOIN endpoint e ON e.id = d.endpoint_id "
                f"WHERE d.plan_id = :p AND d.state IN ({final}) ORDER BY d.id LIMIT 5"
            ),
            {"p": plan},
        ).all()
    return [f"{c} {a}: {s} ({err})" for c, a, s, err in rows]


def first_entries(engine: Engine, plan: int, states: str, start: float) -> dict[str, Reached]:
    """Per channel: how many deliveries have an entry in one of `states`, and when the
    last of them first had one (seconds after `start`), from the activity log."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT channel, delivery_id, min(at) FROM activity_entry WHERE plan_id = :p "
                f"AND delivery_id IS NOT NULL AND state IN ({states}) GROUP BY channel, delivery_id"
            ),
            {"p": plan},
        ).all()
    firsts: dict[str, list[float]] = {}
    for channel, _delivery, at in rows:
        if isinstance(at, str):  # SQLite hands back text where the column type is lost
            at = datetime.fromisoformat(at)
        firsts.setdefault(channel, []).append(as_utc(at).timestamp())
    return {c: Reached(len(ts), max(ts) - start) for c, ts in firsts.items()}


def wait_reached(
    engine: Engine,
    plan: int,
    expected: dict[str, int],
    within: float,
    procs: dict[str, subprocess.Popen[str] | subprocess.Popen[bytes]],
    work: Path,
    what: str,
) -> None:
    deadline = time.time() + within
    while True:
        got = reached_now(engine, plan)
        # A player reports `received`, then `played` when the clip has played through.
        if all(got.get(c, 0) >= n for c, n in expected.items()) and played_now(
            engine, plan
        ) >= expected.get("loudspeaker", 0):
            return
        stuck = lost(engine, plan)
        if stuck:
            raise SystemExit(f"the {what} lost deliveries: {stuck}")
        for name, proc in procs.items():
            if proc.poll() is not None:
                log = work / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise SystemExit(f"{name} ended during the {what}:\n{tail}")
        if time.time() > deadline:
            raise SystemExit(
                f"the {what} did not reach every endpoint in {within:.0f} s: "
                f"expected {expected}, states now {states_now(engine, plan)}"
            )
        time.sleep(0.25)


def played_now(engine: Engine, plan: int) -> int:
    """`played` entries of the plan's loudspeaker deliveries."""
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM activity_entry WHERE plan_id = :p "
                    "AND channel = 'loudspeaker' AND event = 'played'"
                ),
                {"p": plan},
            )
            or 0
        )


def check_counts(engine: Engine, plan: int, expected: dict[str, int], what: str) -> None:
    """Every endpoint exactly once, nothing missing, nothing extra — or fail loudly."""
    problems: list[str] = []
    with engine.connect() as conn:
        per_channel = conn.execute(
            text(
                "SELECT channel, count(*), count(DISTINCT endpoint_id), "
                f"sum(CASE WHEN state IN ({PROVEN_SQL}) THEN 1 ELSE 0 END) "
                "FROM delivery WHERE plan_id = :p GROUP BY channel"
            ),
            {"p": plan},
        ).all()
        sms_ids = conn.scalar(
            text(
                "SELECT count(DISTINCT provider_id) FROM delivery "
                "WHERE plan_id = :p AND channel = 'sms'"
            ),
            {"p": plan},
        )
        shown = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT b.delivery_id) FROM board_display b "
                "JOIN delivery d ON d.id = b.delivery_id WHERE d.plan_id = :p"
            ),
            {"p": plan},
        ).one()
    played = played_now(engine, plan)
    found = {c: (int(n), int(distinct), int(ok or 0)) for c, n, distinct, ok in per_channel}
    for channel, n in expected.items():
        deliveries, distinct, ok = found.pop(channel, (0, 0, 0))
        if (deliveries, distinct, ok) != (n, n, n):
            problems.append(
                f"{channel}: {n} endpoints, {deliveries} deliveries to {distinct} distinct "
                f"endpoints, {ok} reached"
            )
    for channel, (deliveries, _, _) in found.items():
        problems.append(f"{channel}: {deliveries} deliveries where none were expected")
    if expected.get("sms") and sms_ids != expected["sms"]:
        problems.append(f"sms: {expected['sms']} numbers but {sms_ids} gateway messages")
    if expected.get("loudspeaker") and played != expected["loudspeaker"]:
        problems.append(f"loudspeaker: {expected['loudspeaker']} players, {played} played")
    if expected.get("boards") and tuple(shown) != (expected["boards"], expected["boards"]):
        problems.append(
            f"boards: {expected['boards']} screens, {shown[0]} display records "
            f"for {shown[1]} deliveries"
        )
    if problems:
        listed = "\n  ".join(problems)
        raise SystemExit(f"the {what} did not reach each endpoint once:\n  {listed}")


def declare_now(config: Path, audio: Path) -> None:
    """The declaring process (`--declare`): print the reference, when declare was called
    and when it returned."""
    from dispatcher.emergency import EmergencyRequest, declare

    settings = load_settings(config)
    engine = open_database(settings)
    called = time.time()
    ref = declare(
        engine,
        settings,
        EmergencyRequest(text=TEXT, units=[UNIT], audio=audio, title=TITLE),
        SystemClock().now(),
        "bench",
    )
    accepted = time.time()
    print(json.dumps({"ref": ref, "called": called, "accepted": accepted}), flush=True)


@contextlib.contextmanager
def database_url(server_url: str | None, work: Path) -> Iterator[str]:
    if server_url is None:
        yield f"sqlite:///{work}/coso.db"
        return
    with scratch_database(server_url) as url:
        yield url


def run(args: argparse.Namespace, work: Path, broker: str, gateway: str, url: str) -> None:
    port = free_port()
    config = work / "coso.toml"
    config.write_text(settings_text(work, url, broker, gateway, port, args.sms_rate))
    settings = load_settings(config)
    engine = open_database(settings)
    slot, tokens = prepare(engine, settings, work, args.players, args.sms, args.boards)
    engine.dispose()
    expected = {"loudspeaker": args.players, "sms": args.sms, "boards": args.boards, "web": 1}
    expected = {c: n for c, n in expected.items() if n}
    env = {**os.environ, "COSO_CONFIG": str(config)}
    procs: dict[str, subprocess.Popen[str] | subprocess.Popen[bytes]] = {}
    watch = make_engine(url)
    within = 120 + args.sms / args.sms_rate * 2 + args.players / 50 + args.boards / 5
    try:
        procs["coso"] = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "coso.log").open("wb"),
        )  # fmt: skip
        if args.players:
            procs["players"] = subprocess.Popen(
                [sys.executable, "-m", "dispatcher.cli", "players", "simulate",
                 "--count", str(args.players), "--id-format", "loa-{n:05d}",
                 "--broker", broker, "--data", str(work / "players")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=(work / "players.log").open("wb"),
            )  # fmt: skip
        deadline = time.time() + 60
        while True:  # the web app answers: the screens can connect
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1),
            ):
                break
            if procs["coso"].poll() is not None or time.time() > deadline:
                raise SystemExit(f"coso did not start:\n{(work / 'coso.log').read_text()[-2000:]}")
            time.sleep(0.2)
        if args.boards:
            procs["screens"] = start_screens(port, tokens, work, "bench")
            wait_connected(procs["screens"], slot.timestamp() - 1)
        online = "SELECT count(*) FROM player_status WHERE online"
        while args.players:
            with watch.connect() as conn:
                if (conn.scalar(text(online)) or 0) >= args.players:
                    break
            if time.time() > slot.timestamp() - 1:
                raise SystemExit("the players were not all online before the slot")
            time.sleep(0.2)
        if time.time() > slot.timestamp() - 1:
            raise SystemExit("the players and screens were not ready before the slot")

        normal = plan_id(watch, NORMAL_PLAN)
        wait_reached(watch, normal, expected, within, procs, work, "normal slot")
        check_counts(watch, normal, expected, "normal slot")

        other = clip(work, CLIP_SECONDS, 880)  # as long, other bytes: no player has it yet
        declared = subprocess.run(
            [sys.executable, "-m", "bench.emergency", "--declare", str(config),
             "--audio", str(other)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if declared.returncode != 0:
            raise SystemExit(f"declaring the emergency failed:\n{declared.stderr[-3000:]}")
        told = json.loads(declared.stdout.strip().splitlines()[-1])
        emergency = plan_id(watch, told["ref"])
        wait_reached(watch, emergency, expected, within, procs, work, "emergency")
        check_counts(watch, emergency, expected, "emergency")

        starts = {"normal": (normal, slot.timestamp()), "emergency": (emergency, told["accepted"])}
        steps = {
            step: {k: first_entries(watch, p, states, t) for k, (p, t) in starts.items()}
            for step, states in STEPS.items()
        }
    finally:
        for proc in reversed(procs.values()):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        watch.dispose()
    report(args, expected, steps, told, url)


def report(
    args: argparse.Namespace,
    expected: dict[str, int],
    steps: dict[str, dict[str, dict[str, Reached]]],
    told: dict[str, float | str],
    url: str,
) -> None:
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    called = float(told["accepted"]) - float(told["called"])
    print(f"database: {database}; {os.cpu_count()} CPU(s); emergency {told['ref']}")
    if args.sms:
        print(
            f"SMS gateway rate: {args.sms_rate} segments/s, one segment each: "
            f"floor for {args.sms:,} SMS = {args.sms / args.sms_rate:.1f} s"
        )
    print(f"declare (checks, audio prepared, deliveries made) took {called:.2f} s before accepted")
    print(
        f"{'':<28} {'endpoints':>9}  {'normal: slot →':>14}  {'emergency: accepted →':>21}  "
        f"{'(declare called →)':>18}  {'emergency / normal':>18}"
    )
    rows: list[tuple[str, int, float, float]] = []
    reached = steps["reached"]
    for channel, n in expected.items():
        label = f"{LABELS[channel]}: all reached"
        rows.append((label, n, reached["normal"][channel].last, reached["emergency"][channel].last))
    last = {k: max(r.last for r in v.values()) for k, v in reached.items()}
    rows.append(("last channel reached", sum(expected.values()), last["normal"], last["emergency"]))
    for step, channel in (("received", "loudspeaker"), ("played", "loudspeaker"),
                          ("accepted", "sms")):  # fmt: skip
        if channel in expected:
            normal, urgent = steps[step]["normal"][channel], steps[step]["emergency"][channel]
            label = f"{LABELS[channel]}: all {step}"
            rows.append((label, expected[channel], normal.last, urgent.last))
    for label, n, normal, urgent in rows:
        ratio = f"{urgent / normal:.2f}x" if normal >= 0.05 and urgent >= 0 else "—"
        print(
            f"{label:<28} {n:>9,}  {normal:>12.2f} s  {urgent:>19.2f} s  "
            f"{urgent + called:>16.2f} s  {ratio:>18}"
        )
    print(
        "a time below zero: reached before declare returned (coso serve sends what the "
        "declaration fanned out as soon as it is committed)"
    )
    print("counts: every endpoint reached exactly once, by both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--sms", type=int, default=10_000)
    parser.add_argument("--boards", type=int, default=100)
    parser.add_argument(
        "--sms-rate", type=int, default=100, help="the gateway's rate: SMS segments per second"
    )
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--broker", default="", help="default: a mosquitto of its own")
    parser.add_argument("--keep", default="", help="keep coso's database and logs in this folder")
    parser.add_argument("--declare", default="", help=argparse.SUPPRESS)
    parser.add_argument("--audio", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.declare:
        declare_now(Path(args.declare), Path(args.audio))
        return
    broker = None
    url = args.broker
    if not url and args.players:
        broker = LocalBroker().start()
        url = broker.url
    gateway_proc, gateway = start_gateway(callbacks=True)
    try:
        with (
            contextlib.nullcontext(args.keep)
            if args.keep
            else tempfile.TemporaryDirectory(prefix="coso-bench-")
        ) as tmp:
            work = Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            with database_url(args.database_url, work) as db:
                run(args, work, url or "mqtt://127.0.0.1:1", gateway, db)
    finally:
        gateway_proc.terminate()
        gateway_proc.wait(10)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
