"""The fault scenarios shared by `bench/faults.py` (full scale) and `tests/test_faults.py`
(CI scale). Each breaks one thing under a running `coso serve` (its own process, on a
PostgreSQL cluster of its own) and counts, from outside coso, what reached the far end:
plays that simulated players performed, messages a fake Twilio gateway accepted.

Only public behaviour is used: processes, the broker, the database, counts at the far end.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from channels.endpoints import add_endpoints
from coso.clock import SystemClock
from coso.config import load_settings
from coso.db import make_engine
from coso.setup import open_database
from schedules.importer import import_plan_file
from tests.conftest import free_port
from tests.fault_services import (
    Mosquitto,
    OwnPostgres,
    PlayRecorder,
    kill9,
    serve,
    stop,
    wait_until,
)
from tests.loudspeakers import clip
from tests.plans import write_plan

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT = "06040"
PLAYER_IDS = "loa-{n:05d}"
FINAL = ("delivered", "played", "displayed", "confirmed", "failed", "expired", "missed")
EXPLAINED = ("failed", "expired", "missed")  # not played, and the log says why
SPEAKER_FINAL = ("played", *EXPLAINED)  # `delivered` is only "received" for a player
Progress = Callable[[str], None]


@dataclass
class Trial:
    """One fault injected, and what the far end saw."""

    scenario: str
    number: int
    fault: str  # where and how it was injected
    expected: int  # plays / messages that should happen, once each
    lost: int = 0  # expected but never happened, without a logged reason
    duplicated: int = 0  # happened more than once (the extra ones)
    explained: int = 0  # did not happen, and the activity log says why
    settle_seconds: float = 0.0  # from the end of the fault to everything settled
    notes: list[str] = field(default_factory=list)


def _noop(_: str) -> None:
    pass


# --- database ---------------------------------------------------------------------------


def _count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def _states(engine: Engine, plan_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, count(*) FROM delivery WHERE plan_id = :p GROUP BY state"),
            {"p": plan_id},
        ).all()
    return {state: n for state, n in rows}


def _by_address(engine: Engine, plan_id: int) -> dict[str, tuple[str, str]]:
    """endpoint address → (delivery state, the last log detail about it)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.address, d.state, (SELECT a.detail FROM activity_entry a "
                "WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1) "
                "FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id WHERE d.plan_id = :p"
            ),
            {"p": plan_id},
        ).all()
    return {address: (state, detail or "") for address, state, detail in rows}


def _plan_id(engine: Engine, number: str) -> int:
    return _count(engine, "SELECT id FROM plan WHERE number = :n", n=number)


# --- loudspeakers -----------------------------------------------------------------------


def _speaker_plan(number: str, audio: Path, start: Any) -> str:
    return f"""\
[plan]
number = "{number}"
title = "Phát thanh thử lỗi"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "loa"
kind = "audio"
title = "Bản tin {number}"
state = "approved"
audio = "{audio}"

[[schedules]]
name = "Phát {number}"
content = "loa"
channel = "loudspeaker"
targets = {{ units = ["{UNIT}"] }}
start = {start.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}
validity = "30m"
misfire_grace = "5m"
"""


@dataclass
class SpeakerRig:
    work: Path
    config: Path
    engine: Engine
    broker: Mosquitto
    recorder: PlayRecorder
    players: int


@contextmanager
def speaker_rig(
    pg: OwnPostgres, work: Path, players: int, *, ack_timeout: str = "30s"
) -> Iterator[SpeakerRig]:
    """A database with `players` loudspeaker endpoints, a broker of its own, and the
    players (recording what they play) connected to it."""
    work.mkdir(parents=True, exist_ok=True)
    url = pg.create_database(f"coso_faults_{uuid.uuid4().hex[:8]}")
    with Mosquitto() as broker:
        config = work / "coso.toml"
        config.write_text(
            common_settings(work, url)
            + f"""[channels.loudspeaker]
topic_prefix = "faults-{uuid.uuid4().hex[:6]}/v1"
client_id = "coso-faults-{uuid.uuid4().hex[:6]}"
events_process = true
ack_timeout = "{ack_timeout}"
[channels.loudspeaker.broker]
url = "{broker.url}"
keepalive = 5
"""
        )
        settings = load_settings(config)
        engine = open_database(settings)
        rows = [
            {"channel": "loudspeaker", "address": PLAYER_IDS.format(n=n), "unit_code": UNIT}
            for n in range(1, players + 1)
        ]
        add_endpoints(engine, rows, SystemClock().now())
        try:
            with PlayRecorder(config, broker.url, PLAYER_IDS, players, work) as recorder:
                yield SpeakerRig(work, config, engine, broker, recorder, players)
        finally:
            engine.dispose()


def _diff(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> Counter[str]:
    """Plays per player between two readings of the recorder."""
    plays: Counter[str] = Counter()
    for player, media in after.items():
        old = before.get(player, {})
        plays[player] = sum(n - old.get(name, 0) for name, n in media.items())
    return plays


class Broadcast:
    """One broadcast to every player of the rig, imported `lead` seconds ahead."""

    def __init__(self, rig: SpeakerRig, label: str, freq: int, lead: float) -> None:
        self.rig = rig
        self.number = f"{label}/KH-UBND"
        audio = clip(rig.work, 0.5, freq=freq)
        self.slot = (SystemClock().now() + timedelta(seconds=lead + 1)).replace(microsecond=0)
        settings = load_settings(rig.config)
        path = write_plan(
            rig.work, _speaker_plan(self.number, audio, self.slot), name=f"{label}.toml"
        )
        import_plan_file(rig.engine, settings, path, SystemClock().now())
        self.plan_id = _plan_id(rig.engine, self.number)
        self.before = rig.recorder.plays()

    def counts(self) -> dict[str, int]:
        """How far the broadcast went: deliveries created, commands sent, played."""
        states = _states(self.rig.engine, self.plan_id)
        return {
            "created": sum(states.values()),
            "sent": sum(
                n for s, n in states.items() if s not in ("pending", "sending", "retry_wait")
            ),
            "played": states.get("played", 0),
        }

    def settled(self) -> bool:
        states = _states(self.rig.engine, self.plan_id)
        if sum(n for s, n in states.items() if s in SPEAKER_FINAL) < self.rig.players:
            return False
        plays = _diff(self.rig.recorder.plays(), self.before)
        return sum(1 for n in plays.values() if n) >= states.get("played", 0)

    def verdict(self, trial: Trial) -> Trial:
        """Count plays per player: lost, duplicated; and whether the log tells the truth."""
        time.sleep(2.0)  # anything that would play twice has time to show itself
        plays = _diff(self.rig.recorder.plays(), self.before)
        deliveries = _by_address(self.rig.engine, self.plan_id)
        ids = [PLAYER_IDS.format(n=n) for n in range(1, self.rig.players + 1)]
        trial.duplicated = sum(max(0, plays[p] - 1) for p in ids)
        trial.duplicated += max(0, len(deliveries) - self.rig.players)
        for player in ids:
            state, detail = deliveries.get(player, ("", ""))
            if plays[player]:
                if state != "played":
                    trial.notes.append(f"{player} played, but its delivery is {state or 'absent'}")
                continue
            if state in EXPLAINED:
                trial.explained += 1
                if len(trial.notes) < 5:
                    trial.notes.append(f"{player} not played: {state} ({detail})")
            else:
                trial.lost += 1
                if len(trial.notes) < 5:
                    trial.notes.append(f"{player} never played; delivery {state or 'absent'}")
        return trial


def _wait_progress(
    broadcast: Broadcast, process: subprocess.Popen[bytes], stage: str, at_least: int, log: Path
) -> dict[str, int]:
    deadline = time.monotonic() + 180
    while True:
        counts = broadcast.counts()
        if counts[stage] >= at_least:
            return counts
        if process.poll() is not None:
            raise RuntimeError(f"coso serve ended on its own:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broadcast stalled at {counts}")
        time.sleep(0.01)


def kill_trials(
    rig: SpeakerRig, trials: int, seed: int, progress: Progress = _noop, first: int = 1
) -> list[Trial]:
    """SIGKILL `coso serve` at a random point of each broadcast's fan-out (the stages in
    turn: deliveries created, commands sent, plays reported; a random count of the stage),
    start it again, wait until every delivery is settled, then count plays per player."""
    rng = random.Random(seed)
    results = []
    stages = ("created", "sent", "played")
    for number in range(first, first + trials):
        stage, at = stages[(number - 1) % len(stages)], rng.randint(1, rig.players - 1)
        broadcast = Broadcast(rig, f"KILL{number}-{uuid.uuid4().hex[:4]}", 300 + 10 * number, 6)
        log = rig.work / f"serve-kill-{number}.log"
        first = serve(rig.config, log)
        try:
            counts = _wait_progress(broadcast, first, stage, at, log)
            kill9(first)
        finally:
            if first.poll() is None:
                kill9(first)
        at_kill = broadcast.counts()
        progress(f"kill #{number}: SIGKILL at {stage} ≥ {at} ({at_kill})")
        restarted = time.monotonic()
        second = serve(rig.config, log)
        try:
            wait_until(broadcast.settled, 300, f"broadcast {broadcast.number} to settle", 0.1)
            settle = time.monotonic() - restarted
        except TimeoutError as exc:
            states = _states(rig.engine, broadcast.plan_id)
            plays = sum(1 for n in _diff(rig.recorder.plays(), broadcast.before).values() if n)
            raise TimeoutError(
                f"{exc}: deliveries {states}, {plays} players played; coso's log:\n"
                f"{log.read_text()[-4000:]}"
            ) from exc
        finally:
            stop(second)
        fault = (
            f"SIGKILL once {stage} ≥ {at:,} (at the kill: {at_kill['created']:,} created, "
            f"{at_kill['sent']:,} sent, {at_kill['played']:,} played)"
        )
        del counts
        trial = Trial("kill -9 coso serve", number, fault, rig.players, settle_seconds=settle)
        results.append(broadcast.verdict(trial))
    return results


def broker_trials(
    rig: SpeakerRig,
    trials: int,
    seed: int,
    down: float,
    progress: Progress = _noop,
    first: int = 1,
) -> list[Trial]:
    """SIGKILL the broker at a random point of each broadcast's fan-out, start it again
    `down` seconds later on the same port (its memory lost), count plays per player."""
    rng = random.Random(seed + 1)
    results = []
    for number in range(first, first + trials):
        stage, at = rng.choice(("sent", "played")), rng.randint(1, rig.players - 1)
        broadcast = Broadcast(rig, f"MQTT{number}-{uuid.uuid4().hex[:4]}", 700 + 10 * number, 6)
        log = rig.work / f"serve-broker-{number}.log"
        coso = serve(rig.config, log)
        try:
            _wait_progress(broadcast, coso, stage, at, log)
            rig.broker.kill()
            at_kill = broadcast.counts()
            progress(f"broker #{number}: killed at {stage} ≥ {at} ({at_kill})")
            time.sleep(down)
            rig.broker.start()
            restarted = time.monotonic()
            wait_until(broadcast.settled, 300, f"broadcast {broadcast.number} to settle", 0.1)
            settle = time.monotonic() - restarted
            if coso.poll() is not None:
                raise RuntimeError(f"coso serve ended:\n{log.read_text()[-3000:]}")
        finally:
            stop(coso)
        fault = (
            f"broker SIGKILL once {stage} ≥ {at:,} (at the kill: {at_kill['sent']:,} sent, "
            f"{at_kill['played']:,} played), back {down:.0f} s later"
        )
        trial = Trial("broker killed, restarted", number, fault, rig.players, settle_seconds=settle)
        results.append(broadcast.verdict(trial))
    return results


# --- SMS --------------------------------------------------------------------------------


@dataclass
class SmsRig:
    work: Path
    config: Path
    engine: Engine
    url: str


def common_settings(work: Path, url: str) -> str:
    """The settings every trial shares: its database, a port of its own (also the media
    origin its players are given), its media folder and a quick idle poll."""
    port = free_port()
    return f"""[database]
url = "{url}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[media]
dir = "{work}/media"
[console]
secret_file = "{work}/session-secret"
[dispatcher]
idle_poll = 0.1
"""


def sms_config(work: Path, url: str, gateway: str, rate: int, retry: dict[str, Any]) -> Path:
    config = work / f"coso-sms-{uuid.uuid4().hex[:6]}.toml"
    config.write_text(
        common_settings(work, url)
        + f"""claim_batch = 20
[dispatcher.retry]
first_delay = "{retry.get("first_delay", "10s")}"
max_delay = "{retry.get("max_delay", "10m")}"
max_attempts = {retry.get("max_attempts", 8)}
[channels.sms]
account_sid = "{_twilio().ACCOUNT_SID}"
auth_token = "{_twilio().AUTH_TOKEN}"
base_url = "{gateway}"
sender = "UBND VQuan"
rate_per_second = {rate}
concurrency = 4
status_callbacks = false
quiet_start = "00:00"
quiet_end = "00:00"
daily_cap = 0
"""
    )
    return config


def _twilio() -> Any:
    import tests.twilio_server as twilio

    return twilio


def _blast(engine: Engine, config: Path, work: Path, recipients: int) -> int:
    """`recipients` people in a group, and a blast to them now; returns its plan id."""
    from schedules.adhoc import add_blast
    from tests.sms import add_recipients, import_sms_plan

    settings = load_settings(config)
    add_recipients(engine, work, recipients, group="g")
    plan = import_sms_plan(engine, settings, work)
    add_blast(
        engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, SystemClock().now(),
        validity=timedelta(hours=6),
    )  # fmt: skip
    return plan.id


def _reconcile(config: Path, log: Path) -> str:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "sms", "reconcile"],
        cwd=Path(__file__).resolve().parent.parent, env={**env, "COSO_CONFIG": str(config)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    with log.open("a") as handle:
        handle.write(done.stdout + done.stderr)
    return (done.stdout + done.stderr).strip()


def _sms_verdict(trial: Trial, creates: list[str], everyone: set[str]) -> Trial:
    sent = Counter(creates)
    trial.lost = len(everyone - set(sent))
    trial.duplicated = sum(n - 1 for n in sent.values() if n > 1)
    trial.duplicated += len(set(sent) - everyone)
    return trial


def database_outage(
    pg: OwnPostgres,
    work: Path,
    recipients: int,
    rate: int,
    down: float,
    after: int,
    progress: Progress = _noop,
    settle_timeout: float = 300,
) -> Trial:
    """An SMS blast through `coso serve`; PostgreSQL stopped (fast shutdown: every connection
    cut) once `after` messages reached the gateway, started again `down` seconds later."""
    from tests.sms import e164
    from tests.twilio_server import TwilioServer

    work.mkdir(parents=True, exist_ok=True)
    url = pg.create_database(f"coso_faults_{uuid.uuid4().hex[:8]}")
    everyone = {e164(n) for n in range(recipients)}
    with TwilioServer() as gateway:
        gateway.behaviour.callbacks = False
        config = sms_config(work, url, gateway.url, rate, {"first_delay": "2s", "max_delay": "30s"})
        engine = open_database(load_settings(config))
        plan_id = _blast(engine, config, work, recipients)
        log = work / "serve-database.log"
        coso = serve(config, log)
        trial = Trial("PostgreSQL stopped", 1, "", recipients)
        try:
            wait_until(lambda: len(gateway.creates) >= after, 120, f"{after} messages sent")
            pg.stop("fast")
            at_stop = len(gateway.creates)
            progress(f"database stopped after {at_stop} messages")
            time.sleep(down)
            during = len(gateway.creates) - at_stop
            pg.start()
            restarted = time.monotonic()
            progress("database started again")
            engine.dispose()
            if coso.poll() is not None:
                trial.notes.append(f"coso serve exited ({coso.returncode}) while it was down")
                coso = serve(config, log)

            def settled() -> bool:
                states = _states(engine, plan_id)
                return (
                    sum(n for s, n in states.items() if s in ("sent", *FINAL, "unknown"))
                    >= recipients
                )

            try:
                wait_until(settled, settle_timeout, "the rest of the blast", 0.2)
            except TimeoutError as exc:
                raise TimeoutError(
                    f"{exc}: deliveries {_states(engine, plan_id)}, "
                    f"{len(gateway.creates)} messages at the gateway; coso's log: {log}"
                ) from exc
            unknown = _states(engine, plan_id).get("unknown", 0)
            if unknown:
                answer = _reconcile(config, log)
                trial.notes.append(
                    f"{unknown} unknown: `coso sms reconcile`: {answer.splitlines()[-1]}"
                )
                wait_until(
                    lambda: set(_states(engine, plan_id)) <= {"sent", *FINAL}, 120, "reconciled"
                )
            trial.settle_seconds = time.monotonic() - restarted
            time.sleep(1.0)
        finally:
            stop(coso)
            engine.dispose()
        states = _states(engine, plan_id)
        engine.dispose()
        trial.fault = (
            f"pg_ctl stop -m fast after {at_stop:,} of {recipients:,} messages, "
            f"{down:.0f} s down ({during} sent meanwhile); end states {states}"
        )
        trial.explained = sum(n for s, n in states.items() if s in EXPLAINED)
        return _sms_verdict(trial, list(gateway.creates), everyone)


@dataclass
class GatewayTrial(Trial):
    gaps_429: list[list[float]] = field(default_factory=list)
    gaps_5xx: list[list[float]] = field(default_factory=list)
    retry_after: int = 0
    permanent_attempts: dict[str, int] = field(default_factory=dict)


def gateway_outage(
    pg: OwnPostgres,
    work: Path,
    recipients: int,
    outage: float,
    retry_after: int,
    retry: dict[str, Any],
    progress: Progress = _noop,
) -> GatewayTrial:
    """An SMS blast while the gateway answers every create with 429 (Retry-After) for half
    the recipients and 503 for the other half, for `outage` seconds; three numbers are
    refused for good (400, Twilio error 21211) and must be tried once each after it."""
    from tests.sms import e164
    from tests.twilio_server import TwilioServer

    work.mkdir(parents=True, exist_ok=True)
    url = pg.create_database(f"coso_faults_{uuid.uuid4().hex[:8]}")
    everyone = {e164(n) for n in range(recipients)}
    invalid = {e164(n) for n in (1, 2, 3)}
    with TwilioServer() as gateway:
        b = gateway.behaviour
        b.callbacks = False
        b.permanent = {number: 21211 for number in invalid}
        b.outage_retry_after = retry_after
        b.outage_throttled = {e164(n) for n in range(0, recipients, 2)}
        config = sms_config(work, url, gateway.url, 1000, retry)
        engine = open_database(load_settings(config))
        b.outage_until = time.time() + 3600  # from before the first request
        plan_id = _blast(engine, config, work, recipients)
        log = work / "serve-gateway.log"
        coso = serve(config, log)
        try:
            wait_until(lambda: gateway.attempts, 60, "the first request")
            b.outage_until = time.time() + outage
            progress(f"gateway answers 429/503 for {outage:.0f} s")
            time.sleep(outage)
            ended = time.monotonic()
            wait_until(
                lambda: (
                    sum(n for s, n in _states(engine, plan_id).items() if s in ("sent", *FINAL))
                    >= recipients
                ),
                600,
                "every message sent or failed",
                0.2,
            )
            settle = time.monotonic() - ended
            time.sleep(1.0)
        finally:
            stop(coso)
        states = _states(engine, plan_id)
        engine.dispose()
    trial = GatewayTrial(
        "gateway 429/503", 1, "", recipients - len(invalid), settle_seconds=settle,
        retry_after=retry_after,
    )  # fmt: skip
    by_number: dict[str, list[tuple[float, int]]] = {}
    for number, at, status in gateway.attempts:
        by_number.setdefault(number, []).append((at, status))
    for number, tries in sorted(by_number.items()):
        tries.sort()
        gaps = [round(b[0] - a[0], 2) for a, b in itertools.pairwise(tries)]
        if number in invalid:
            statuses = [status for _, status in tries]
            first = statuses.index(400) if 400 in statuses else len(statuses)
            trial.permanent_attempts[number] = len(statuses) - first  # 1: refused once, then left
        elif number in b.outage_throttled:
            trial.gaps_429.append(gaps)
        else:
            trial.gaps_5xx.append(gaps)
    trial.fault = (
        f"every create answered 429 (Retry-After: {retry_after}) or 503 for {outage:.0f} s; "
        f"{len(invalid)} numbers refused 400/21211; end states {states}"
    )
    trial.explained = states.get("failed", 0) - len(invalid)
    _sms_verdict(trial, list(gateway.creates), everyone - invalid)
    if sorted(trial.permanent_attempts) != sorted(invalid) or any(
        n != 1 for n in trial.permanent_attempts.values()
    ):
        trial.notes.append(
            f"permanent errors (requests from the first 400 on): {trial.permanent_attempts}"
        )
    return trial


def spacing(gaps: list[list[float]]) -> list[float]:
    """The median gap before each retry, over the recipients (retry 1, 2, …)."""
    import statistics

    longest = max((len(g) for g in gaps), default=0)
    return [round(statistics.median(g[i] for g in gaps if len(g) > i), 1) for i in range(longest)]


def make_engine_for(url: str) -> Engine:
    return make_engine(url)
