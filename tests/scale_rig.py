"""Scale-out as deployed, shared by `bench/scale.py` (full size, one then two dispatchers)
and `tests/test_scale.py` (CI size): `coso serve --role web` and N `coso serve --role
dispatcher --name dN` processes on one PostgreSQL database, an MQTT broker, simulated
players that note every clip they play (tests/play_recorder.py, a process of its own) and
the local SMS gateway (tests/twilio_server.py, a process of its own). One slot sends a
broadcast to every player and a text to every recipient; what reached the far end is
counted there: plays per player, messages per number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import Engine, text

from channels.endpoints import add_endpoints
from channels.sms.recipients import Recipient, save_recipients
from content.media import token_secret
from coso.clock import SystemClock
from coso.config import load_settings
from coso.setup import open_database
from schedules.importer import import_plan_file
from tests.conftest import free_port
from tests.fault_services import PlayRecorder, kill9, serve, stop, wait_until
from tests.loudspeakers import clip
from tests.plans import write_plan
from tests.sms import e164
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, PREFIX

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT = "06040"
PLAYER_IDS = "loa-{n:05d}"
LEAD = 20.0  # seconds from the plan's import to its slot: players have their programme and its
# media by then (a plan is made ahead), so the figure is sending, not 10,000 downloads
# Delivery states after which nothing more happens to a delivery of the channel here.
SETTLED = {
    "loudspeaker": ("played", "failed", "expired"),
    "sms": ("sent", "delivered", "failed", "undelivered", "unknown", "expired"),
}
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def start_gateway() -> tuple[subprocess.Popen[str], str]:
    """The local Twilio-compatible gateway in its own process (no status callbacks)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.twilio_server", "--no-callbacks"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def gateway_counts(gateway: str) -> Counter[str]:
    """How many messages the gateway accepted for each number."""
    response = requests.get(gateway + PREFIX + ".json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=120)
    response.raise_for_status()
    return Counter(m["to"] for m in response.json()["messages"])


def config_text(work: Path, database_url: str, broker_url: str, gateway: str, port: int) -> str:
    """Every process's settings: the web app's port is the media origin players are given."""
    tag = uuid.uuid4().hex[:6]
    return f"""[database]
url = "{database_url}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[media]
dir = "{work}/media"
[console]
secret_file = "{work}/session-secret"
[timer]
reconcile_every = "1s"
[dispatcher]
idle_poll = 0.05
claim_batch = 500
fanout_batch = 5000
timer_retry = "1s"
[channels.loudspeaker]
topic_prefix = "scale-{tag}/v1"
client_id = "coso-scale-{tag}"
events_process = true
max_inflight = 200
rate_per_second = 1000000
# The slot's commands go at the slot, so that the dispatchers' throughput is what is timed.
cue_ahead = "0s"
[channels.loudspeaker.broker]
url = "{broker_url}"
keepalive = 5
[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "{gateway}"
sender = "UBND VQuan"
rate_per_second = 1000000
concurrency = 16
timeout = 30.0
status_callbacks = false
quiet_start = "00:00"
quiet_end = "00:00"
daily_cap = 0
"""


def plan_text(number: str, audio: Path, slot: Any) -> str:
    start = f"{slot.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}"
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền trên loa và tin nhắn"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "loa"
kind = "audio"
title = "Bản tin {number}"
state = "approved"
audio = "{audio}"

[[content]]
key = "tin"
kind = "text"
title = "Nhắc lịch"
body = "Kinh gui {{{{ recipient.name }}}}: tu 01/6 nop ho so truc tuyen tai dichvucong.gov.vn."
state = "approved"

[[schedules]]
name = "Phát thanh {number}"
content = "loa"
channel = "loudspeaker"
targets = {{ units = ["{UNIT}"] }}
start = {start}
validity = "30m"
misfire_grace = "5m"

[[schedules]]
name = "Tin nhắn {number}"
content = "tin"
channel = "sms"
targets = {{ units = ["{UNIT}"] }}
start = {start}
validity = "2h"
misfire_grace = "5m"
options = {{ khong_dau = true }}
"""


@dataclass
class Run:
    """One slot through N dispatchers, and what the far end saw."""

    dispatchers: int
    players: int
    recipients: int
    seconds: float = 0.0  # from the slot to every delivery done (played / accepted)
    out_seconds: float = 0.0  # … to every command at the broker and every text accepted
    speaker_seconds: float = 0.0  # … to every player's outcome recorded (played)
    sms_seconds: float = 0.0
    lost: int = 0  # a player that never played, a number that got nothing
    duplicates: int = 0  # plays, messages, deliveries or log entries beyond one each
    # dispatcher name → channel → deliveries it claimed
    claimed: dict[str, Counter[str]] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)  # "channel:state" → deliveries
    notes: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return (self.players + self.recipients) / self.seconds if self.seconds else 0.0


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def health(port: int) -> dict[str, Any]:
    """A process's /healthz, whatever its status code."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


class ScaleRig:
    """The database filled with `players` loudspeakers and `recipients` SMS numbers in one
    commune, the gateway and the players running; `run()` starts the web app and
    `dispatchers` dispatchers, sends one slot, waits until everything is done and counts."""

    def __init__(
        self,
        work: Path,
        database_url: str,
        broker_url: str,
        players: int,
        recipients: int,
        progress: Progress = _quiet,
    ) -> None:
        self.work, self.database_url = work, database_url
        self.players, self.recipients = players, recipients
        self.broker_url, self.progress = broker_url, progress
        self.web_port = free_port()
        self.config = work / "coso.toml"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.gateway_proc: subprocess.Popen[str] | None = None
        self.recorder: PlayRecorder | None = None

    def __enter__(self) -> ScaleRig:
        try:
            self._prepare()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.gateway_proc, self.gateway = start_gateway()
        self.config.write_text(
            config_text(self.work, self.database_url, self.broker_url, self.gateway, self.web_port)
        )
        self.settings = load_settings(self.config)
        self.engine: Engine = open_database(self.settings)
        token_secret(self.settings.media)  # made once, before the processes that read it
        now = SystemClock().now()
        add_endpoints(
            self.engine,
            [
                {"channel": "loudspeaker", "address": PLAYER_IDS.format(n=n), "unit_code": UNIT}
                for n in range(1, self.players + 1)
            ],
            now,
        )
        people = [Recipient(e164(n), f"CD {n}", UNIT, (), n) for n in range(self.recipients)]
        save_recipients(self.engine, people, now)
        self.progress(f"{self.players:,} players and {self.recipients:,} recipients written")
        self.recorder = PlayRecorder(
            self.config, self.broker_url, PLAYER_IDS, self.players, self.work
        ).__enter__()
        self.progress("players connected")

    def __exit__(self, *exc: object) -> None:
        for name in list(self.processes):
            self.stop(name)
        if self.recorder is not None:
            self.recorder.__exit__()
        if self.gateway_proc is not None:
            self.gateway_proc.terminate()
            self.gateway_proc.wait(10)
        if hasattr(self, "engine"):
            self.engine.dispose()

    # --- processes ------------------------------------------------------------------------

    def start(self, name: str, role: str) -> subprocess.Popen[bytes]:
        """`coso serve --role ROLE` ("web" on the web app's port; a dispatcher named
        `name` on a port of its own, for its /healthz)."""
        port = self.web_port if role == "web" else free_port()
        args = ["--role", role, "--port", str(port)]
        if role != "web":
            args += ["--name", name]
        self.processes[name] = serve(self.config, self.work / f"{name}.log", args=args)
        self.ports[name] = port
        return self.processes[name]

    def wait_healthy(self, names: list[str], timeout: float = 120) -> None:
        def up() -> bool:
            for name in names:
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} ended: {self.log(name)}")
            return all(healthy(self.ports[name]) for name in names)

        wait_until(up, timeout, f"{', '.join(names)} healthy", 0.2)

    def log(self, name: str, tail: int = 3000) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")[-tail:]

    def kill(self, name: str) -> None:
        kill9(self.processes.pop(name))

    def stop(self, name: str) -> None:
        stop(self.processes.pop(name))

    def pid_names(self) -> dict[int, str]:
        return {p.pid: name for name, p in self.processes.items()}

    # --- one slot -------------------------------------------------------------------------

    def run(self, dispatchers: int, timeout: float = 300) -> Run:
        """Web app and `dispatchers` dispatchers up; one slot to everyone; counts."""
        names = [f"d{n}" for n in range(1, dispatchers + 1)]
        self.start("web", "web")
        for name in names:
            self.start(name, "dispatcher")
        self.wait_healthy(["web", *names])
        self.progress(f"web app and {dispatchers} dispatcher(s) up")
        number = f"SCALE{dispatchers}-{uuid.uuid4().hex[:4]}/KH"
        audio = clip(self.work, 0.5, freq=300 + 20 * dispatchers)
        slot = (SystemClock().now() + timedelta(seconds=LEAD + 1)).replace(microsecond=0)
        path = write_plan(self.work, plan_text(number, audio, slot), name=f"{number[:6]}.toml")
        assert self.recorder is not None
        before = self.recorder.plays()
        import_plan_file(self.engine, self.settings, path, SystemClock().now())
        plan_id = self._scalar("SELECT id FROM plan WHERE number = :n", n=number)
        run = Run(dispatchers, self.players, self.recipients)
        deadline = time.monotonic() + LEAD + timeout
        while True:
            at = time.time() - slot.timestamp()
            played = self._count(plan_id, "loudspeaker", SETTLED["loudspeaker"])
            accepted = self._count(plan_id, "sms", SETTLED["sms"])
            if not run.out_seconds and accepted >= self.recipients:
                out = self._count(
                    plan_id, "loudspeaker", ("sent", "delivered", *SETTLED["loudspeaker"])
                )
                if out >= self.players:
                    run.out_seconds = at
            if not run.speaker_seconds and played >= self.players:
                run.speaker_seconds = at
            if not run.sms_seconds and accepted >= self.recipients:
                run.sms_seconds = at
            if run.speaker_seconds and run.sms_seconds:
                run.out_seconds = run.out_seconds or at
                break
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} ended on its own: {self.log(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after {at:.0f} s: {played} broadcasts and {accepted} texts settled; "
                    f"deliveries {self._states(plan_id)}; d1's log: {self.log('d1')}"
                )
            time.sleep(0.05)
        run.seconds = max(run.speaker_seconds, run.sms_seconds)
        self.progress(f"{dispatchers} dispatcher(s): done {run.seconds:.2f} s after the slot")
        time.sleep(2.0)  # anything that would happen twice has time to show itself
        run.states = self._states(plan_id)
        self._verdict(run, plan_id, before)
        for name in ["web", *names]:
            self.stop(name)
        return run

    def _verdict(self, run: Run, plan_id: int, before: dict[str, dict[str, int]]) -> None:
        assert self.recorder is not None
        after = self.recorder.plays()
        for n in range(1, self.players + 1):
            player = PLAYER_IDS.format(n=n)
            old = before.get(player, {})
            plays = sum(c - old.get(clip, 0) for clip, c in after.get(player, {}).items())
            if plays == 0:
                run.lost += 1
                if len(run.notes) < 5:
                    run.notes.append(f"{player} never played")
            run.duplicates += max(0, plays - 1)
        texts = gateway_counts(self.gateway)
        for n in range(self.recipients):
            got = texts.get(e164(n), 0)
            if got == 0:
                run.lost += 1
                if len(run.notes) < 10:
                    run.notes.append(f"{e164(n)} got no text: {self._last_word(plan_id, e164(n))}")
            run.duplicates += max(0, got - 1)
        for channel, event in (("loudspeaker", "played"), ("sms", "sent")):
            entries, distinct = self._row(
                "SELECT count(*), count(DISTINCT delivery_id) FROM activity_entry "
                "WHERE plan_id = :p AND channel = :c AND event = :e",
                p=plan_id,
                c=channel,
                e=event,
            )
            deliveries, endpoints = self._row(
                "SELECT count(*), count(DISTINCT endpoint_id) FROM delivery "
                "WHERE plan_id = :p AND channel = :c",
                p=plan_id,
                c=channel,
            )
            run.duplicates += (entries - distinct) + (deliveries - endpoints)
            if entries - distinct or deliveries - endpoints:
                run.notes.append(
                    f"{channel}: {deliveries} deliveries for {endpoints} endpoints, "
                    f"{entries} '{event}' entries for {distinct} deliveries"
                )
        names = self.pid_names()
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT claimed_by, channel, count(*) FROM delivery WHERE plan_id = :p "
                    "AND claimed_by IS NOT NULL GROUP BY claimed_by, channel"
                ),
                {"p": plan_id},
            ).all()
        for worker, channel, count in rows:
            pid = int(worker.rsplit(":", 2)[1])
            run.claimed.setdefault(names.get(pid, worker), Counter())[channel] += count

    # --- database -------------------------------------------------------------------------

    def _scalar(self, sql: str, **params: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar() or 0)

    def _row(self, sql: str, **params: Any) -> tuple[int, int]:
        with self.engine.connect() as conn:
            a, b = conn.execute(text(sql), params).one()
        return int(a), int(b)

    def _count(self, plan_id: int, channel: str, states: tuple[str, ...]) -> int:
        return self._scalar(
            "SELECT count(*) FROM delivery WHERE plan_id = :p AND channel = :c AND state = ANY(:s)",
            p=plan_id,
            c=channel,
            s=list(states),
        )

    def _last_word(self, plan_id: int, address: str) -> str:
        """An endpoint's delivery state and its last log entry (event, detail)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT d.state, a.event, a.detail FROM delivery d "
                    "JOIN endpoint e ON e.id = d.endpoint_id "
                    "LEFT JOIN activity_entry a ON a.delivery_id = d.id "
                    "WHERE d.plan_id = :p AND e.address = :a ORDER BY a.id DESC LIMIT 1"
                ),
                {"p": plan_id, "a": address},
            ).first()
        return "no delivery" if row is None else f"delivery {row[0]}, last entry {row[1]}: {row[2]}"

    def _states(self, plan_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT channel || ':' || state, count(*) FROM delivery WHERE plan_id = :p "
                    "GROUP BY channel, state"
                ),
                {"p": plan_id},
            ).all()
        return {k: int(n) for k, n in rows}
