"""How late the timer fires: 10,000 schedules loaded by `coso serve`, every slot of a window of
a few minutes; next to APScheduler alone firing the same 10,000 jobs in the same run.

    python -m bench.timer --schedules 10000 [--window 180] [--database-url postgresql://...]
        [--busy 2] [--sessions-share 0.2] [--keep DIR] [--seed 16]

coso runs as `coso serve` in its own process and is only watched from outside: start-up is
the time from starting the process to `/healthz` reporting a loaded timer; a slot's lateness
is its occurrence's `fired_at` (stamped when the row is written) less its `scheduled_for`.
The baseline, in a process of its own after coso's window, is an APScheduler 3
BackgroundScheduler with the same schedules as cron triggers (date triggers for explicit
times), each job recording when it ran; its slots fall at the same seconds of the minute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, delete, select

from bench.fanout import scratch_database
from channels.endpoints import add_endpoints
from coso.config import load_settings
from coso.db import make_engine, migrate, write
from coso.units import load_current_units, resolve_unit_codes
from schedules.importer import import_plan
from schedules.models import Occurrence, Schedule
from schedules.planfile import PlanFile
from schedules.sessions import BroadcastSession, SessionPlacement

ROOT = Path(__file__).resolve().parent.parent
ZONE = "Asia/Ho_Chi_Minh"
TZ = ZoneInfo(ZONE)
PROVINCE = "20"  # its communes each have a web bulletin; each schedule targets one commune
# Kinds of schedule and their shares of those that are not sessions.
KINDS = {"minutely": 0.10, "hourly": 0.30, "daily": 0.30, "weekly": 0.30}
CROWD = 0.05  # share of the slots put on the first second of a minute (many share it)
SETTLE = 5.0  # seconds after the window before the results are read
GOAL_P99_MS, GOAL_RATIO = 50.0, 2.0
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
CRON_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Spec:
    """One schedule, as offsets into the window so that it can be laid on any window whose
    start is a whole number of minutes from another's: the slots keep their seconds."""

    kind: str  # minutely, hourly, daily, weekly, session
    offset: int  # seconds from the window start of its slot (minutely: the first slot)
    extra_days: tuple[int, ...] = ()  # weekly: other weekdays (0 = Monday) it fires on
    second_too: int | None = None  # minutely: a second slot each minute, this many s later
    unit: int = 0  # which commune it targets


def make_specs(count: int, window: int, seed: int, sessions_share: float) -> list[Spec]:
    rnd = random.Random(seed)
    sessions = round(count * sessions_share)
    kinds = ["session"] * sessions + rnd.choices(
        list(KINDS), weights=list(KINDS.values()), k=count - sessions
    )
    specs = []
    for kind in kinds:
        if kind == "minutely":
            offset = rnd.randrange(min(window, 60))
            second_too = rnd.choice([None, None, None, 30])
        else:
            offset = _crowded(rnd, window) if rnd.random() < CROWD else rnd.randrange(window)
            second_too = None
        extra = tuple(rnd.sample(range(1, 7), rnd.randint(1, 3))) if kind == "weekly" else ()
        specs.append(Spec(kind, offset, extra, second_too, rnd.randrange(1_000_000)))
    return specs


def session_start(spec: Spec, start: datetime, window: int) -> datetime:
    """The start of the session a queued item of `spec`'s commune goes into: each commune
    has one session in the window, at one of its whole minutes (as a commune's 06:00)."""
    return start + timedelta(minutes=spec.unit % max(1, window // 60))


def commune_of(spec: Spec, communes: list[str], window: int) -> str:
    """The commune a spec targets; a queued item's commune is one whose session falls at
    the spec's minute (one session per commune in the window)."""
    if spec.kind != "session":
        return communes[spec.unit % len(communes)]
    minutes = max(1, window // 60)
    k = spec.unit % minutes
    return communes[k + minutes * ((spec.unit // minutes) % (len(communes) // minutes))]


def _crowded(rnd: random.Random, window: int) -> int:
    """An offset at a whole minute of the window start (which `run` puts on a whole minute)."""
    return 60 * rnd.randrange(max(1, window // 60))


@dataclass(frozen=True)
class Laid:
    """A spec laid on a window: its RRULE, start and zone as coso stores them, the same as
    APScheduler cron fields (or date times), and the slots that fall in the window."""

    rrule: str | None
    start_local: datetime
    cron: dict[str, str] | None
    dates: tuple[datetime, ...]
    slots: tuple[datetime, ...]  # UTC


def lay(spec: Spec, start: datetime, window: int) -> Laid:
    """`spec` on the window [start, start + window)."""
    at = start + timedelta(seconds=spec.offset)
    local = at.astimezone(TZ)
    begin = (local - timedelta(days=2)).replace(hour=0, minute=0, second=0, tzinfo=None)
    end = start + timedelta(seconds=window)
    if spec.kind == "session":
        # Queued into its commune's session: the schedule's explicit time is the session's
        # start (every item queued there shares it); a date job for APScheduler.
        at = session_start(spec, start, window)
        return Laid(None, at.astimezone(TZ).replace(tzinfo=None), None, (at,), (at,))
    if spec.kind == "minutely":
        seconds = sorted({local.second, *([] if spec.second_too is None else
                                           [(local.second + spec.second_too) % 60])})  # fmt: skip
        by = ",".join(str(s) for s in seconds)
        slots = tuple(
            t
            for t in (start + timedelta(seconds=n) for n in range(window))
            if t.astimezone(TZ).second in seconds
        )
        return Laid(f"FREQ=MINUTELY;BYSECOND={by}", begin, {"second": by}, (), slots)
    cron = {"minute": str(local.minute), "second": str(local.second)}
    parts = f"BYMINUTE={local.minute};BYSECOND={local.second}"
    if spec.kind == "hourly":
        rule = f"FREQ=HOURLY;{parts}"
    else:
        cron["hour"] = str(local.hour)
        parts = f"BYHOUR={local.hour};{parts}"
        if spec.kind == "daily":
            rule = f"FREQ=DAILY;{parts}"
        else:
            days = sorted({local.weekday(), *((local.weekday() + d) % 7 for d in spec.extra_days)})
            rule = f"FREQ=WEEKLY;BYDAY={','.join(DAYS[d] for d in days)};{parts}"
            cron["day_of_week"] = ",".join(CRON_DAYS[d] for d in days)
    assert start <= at < end
    return Laid(rule, begin, cron, (), (at,))


# --- the database coso serves ----------------------------------------------------------


def prepare(engine: Engine, specs: list[Spec], start: datetime, window: int, now: datetime) -> int:
    """A plan with a content item, a web bulletin per commune, and one schedule per spec
    (written as rows, as the import writes them: the import's own checks are not what this
    measures). Returns how many slots fall in the window."""
    migrate(engine)
    load_current_units(engine)
    communes = sorted(resolve_unit_codes(engine, [PROVINCE])[PROVINCE] - {PROVINCE})
    add_endpoints(
        engine,
        [{"channel": "web", "address": f"bulletin:{c}", "unit_code": c} for c in communes],
        now - timedelta(days=1),
    )
    local_now = now.astimezone(TZ)
    plan = PlanFile.model_validate(
        {
            "plan": {
                "number": "BENCH/TIMER",
                "title": "timer bench",
                "period_start": (local_now - timedelta(days=7)).date(),
                "period_end": (local_now + timedelta(days=60)).date(),
                "zone": ZONE,
            },
            "content": [{"key": "c", "title": "Thông báo", "body": "b", "state": "approved"}],
            "schedules": [
                {
                    "name": "template",
                    "content": "c",
                    "channel": "web",
                    "targets": {"units": [communes[0]]},
                    "start": (local_now + timedelta(days=30)).replace(tzinfo=None, microsecond=0),
                }
            ],
        }
    )
    import_plan(engine, load_settings(None), plan, now)
    S = Schedule.__table__
    with engine.connect() as conn:
        template = dict(conn.execute(select(S)).one()._mapping)
    template.pop("id")
    rows, slots, queued = [], 0, []
    for n, spec in enumerate(specs):
        laid = lay(spec, start, window)
        slots += len(laid.slots)
        row = template | {
            "name": f"{spec.kind} {n}",
            "targets": {"units": [commune_of(spec, communes, window)]},
            "start_local": laid.start_local.isoformat(),
            "rrule": laid.rrule,
            "fired_through": now,
            "updated_at": now,
        }
        if spec.kind == "session":
            queued.append(n)
            row |= {
                "start_local": (start - timedelta(days=1)).astimezone(TZ).date().isoformat()
                + "T00:00:00",
                "queue": {"per_week": 1, "sessions": 1, "when_full": "next", "length": "30s"},
                "rdates_local": [laid.start_local.isoformat()],
                "validity_seconds": SESSION_MINUTES * 60,
            }
        rows.append(row)
    with write(engine) as conn:
        conn.execute(delete(S))
        for n in range(0, len(rows), 2000):
            conn.execute(S.insert(), rows[n : n + 2000])
        if queued:
            write_sessions(conn, specs, queued, communes, start, window, now)
    return slots


SESSION_MINUTES = 30  # each commune's session in the window; queued items of 30 s each


def write_sessions(
    conn: Any,
    specs: list[Spec],
    queued: list[int],
    communes: list[str],
    start: datetime,
    window: int,
    now: datetime,
) -> None:
    """Each commune with queued items gets its session (every day, at its whole minute of
    the window), and each queued schedule its placement there, as the import writes them."""
    S = Schedule.__table__
    ids = list(conn.scalars(select(S.c.id).order_by(S.c.id)))
    sessions: dict[str, datetime] = {}
    placements = []
    for n in queued:
        spec = specs[n]
        commune = commune_of(spec, communes, window)
        at = session_start(spec, start, window)
        if sessions.setdefault(commune, at) != at:
            raise SystemExit(f"commune {commune}: two sessions in the window")
        placements.append(
            {"schedule_id": ids[n], "unit_code": commune, "session": "Phiên",
             "starts_at": at, "minutes": SESSION_MINUTES, "seconds": 30, "placed_at": now}
        )  # fmt: skip
    room = SESSION_MINUTES * 60 // 30
    crowded = Counter(p["unit_code"] for p in placements).most_common(1)[0]
    if crowded[1] > room:
        raise SystemExit(f"commune {crowded[0]}: {crowded[1]} items queued, room for {room}")
    conn.execute(
        BroadcastSession.__table__.insert(),
        [
            {"scope": f"unit:{commune}", "name": "Phiên", "weekdays": list(range(1, 8)),
             "start": f"{at.astimezone(TZ):%H:%M}", "minutes": SESSION_MINUTES,
             "plan_id": None, "created_at": now}
            for commune, at in sessions.items()
        ],
    )  # fmt: skip
    conn.execute(SessionPlacement.__table__.insert(), placements)


def run_coso(
    url: str, work: Path, specs: list[Spec], window: int, lead: float
) -> tuple[dict[tuple[int, datetime], float], float, int, str, datetime]:
    """`coso serve` over the prepared database: (lateness of each slot found, in seconds;
    start-up in seconds; slots expected; the timer's own line about its load; the window's
    start)."""
    config = work / "coso.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[media]\ndir = "{work}/media"\n'
        f'[console]\nsecret_file = "{work}/session-secret"\n'
    )
    engine = make_engine(url)
    now = datetime.now(UTC)
    start = _next_minute(now + timedelta(seconds=lead))
    expected = prepare(engine, specs, start, window, now)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = work / "coso.log"
    began = time.perf_counter()
    coso = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, env={**os.environ, "COSO_CONFIG": str(config)},
        stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
    )  # fmt: skip
    try:
        startup = _wait_loaded(coso, port, began, log_path)
        if datetime.now(UTC) >= start:
            raise SystemExit(f"coso took {startup:.1f} s to load: more than --lead {lead}")
        _sleep_until(start + timedelta(seconds=window + SETTLE))
    finally:
        coso.terminate()
        coso.wait(30)
    O = Occurrence.__table__  # noqa: E741
    end = start + timedelta(seconds=window)
    with engine.connect() as conn:
        rows = conn.execute(
            select(O.c.schedule_id, O.c.scheduled_for, O.c.fired_at).where(
                O.c.scheduled_for >= start, O.c.scheduled_for < end
            )
        ).all()
        ids = list(conn.scalars(select(Schedule.__table__.c.id).order_by("id")))
    engine.dispose()
    lateness = {
        (r.schedule_id, _utc(r.scheduled_for)): (
            _utc(r.fired_at) - _utc(r.scheduled_for)
        ).total_seconds()
        for r in rows
    }
    # Slots the specs define, by schedule id (rows were written in the order of the specs).
    wanted = {
        (ids[n], slot) for n, spec in enumerate(specs) for slot in lay(spec, start, window).slots
    }
    assert len(wanted) == expected
    unexpected = set(lateness) - wanted
    if unexpected:
        raise SystemExit(f"{len(unexpected)} occurrences outside the schedules' slots")
    found = {k: v for k, v in lateness.items() if k in wanted}
    said = [line for line in log_path.read_text().splitlines() if "timer loaded" in line]
    return found, startup, expected, said[-1].split("timer loaded: ", 1)[-1] if said else "", start


def _wait_loaded(coso: subprocess.Popen[bytes], port: int, began: float, log: Path) -> float:
    """Seconds from starting the process to a health report whose timer is running."""
    url = f"http://127.0.0.1:{port}/healthz"
    while True:
        if coso.poll() is not None:
            raise SystemExit(f"coso serve ended early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            timer = httpx.get(url, timeout=5).json()["parts"]["timer"]
            if timer["ok"]:
                return time.perf_counter() - began
        if time.perf_counter() - began > 600:
            raise SystemExit("coso's timer not loaded after 600 s")
        time.sleep(0.02)


# --- APScheduler alone -------------------------------------------------------------------


def run_apscheduler(args: argparse.Namespace) -> None:
    """The baseline's own process: every spec as an APScheduler job, each recording when it
    ran; prints one JSON object (when each job ran, and how long adding them took)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    specs = make_specs(args.schedules, args.window, args.seed, args.sessions_share)
    start = datetime.fromisoformat(args.apscheduler_alone)
    ran: list[tuple[int, float]] = []
    began = time.perf_counter()
    scheduler = BackgroundScheduler(timezone=UTC)
    for n, spec in enumerate(specs):
        laid = lay(spec, start, args.window)
        if laid.cron is not None:
            trigger: tuple[str, dict[str, object]] = ("cron", {**laid.cron, "timezone": TZ})
        else:
            trigger = ("date", {"run_date": laid.dates[0]})
        scheduler.add_job(
            _record, trigger[0], args=[ran, n], id=str(n), misfire_grace_time=None, **trigger[1]
        )
    scheduler.start()
    loaded = time.perf_counter() - began
    _sleep_until(start + timedelta(seconds=args.window + SETTLE))
    scheduler.shutdown(wait=True)
    print(json.dumps({"ran": ran, "loaded": loaded}))


def _record(ran: list[tuple[int, float]], n: int) -> None:
    ran.append((n, time.time()))


def baseline(
    args: argparse.Namespace, specs: list[Spec], start: datetime
) -> tuple[list[float], float, int, int]:
    """(lateness of each slot in seconds, load time, slots expected, slots missing)."""
    cmd = [
        sys.executable, "-m", "bench.timer", "--apscheduler-alone", start.isoformat(),
        "--schedules", str(args.schedules), "--window", str(args.window),
        "--seed", str(args.seed), "--sessions-share", str(args.sessions_share),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the APScheduler baseline failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.splitlines()[-1])
    lateness, expected, missing = [], 0, 0
    by_job: dict[int, list[float]] = {}
    for n, at in out["ran"]:
        by_job.setdefault(n, []).append(at)
    for n, spec in enumerate(specs):
        laid = lay(spec, start, args.window)
        slots = [s.timestamp() for s in _pattern(spec, laid, start, args.window)]
        runs = by_job.get(n, [])
        for slot in laid.slots:
            expected += 1
            t = slot.timestamp()
            # The run of this slot: the first at or after it, before the job's next slot.
            later = [s for s in slots if s > t]
            upto = min(later) if later else math.inf
            mine = [r for r in runs if t <= r < upto]
            if not mine:
                missing += 1
                continue
            lateness.append(min(mine) - t)
    return lateness, out["loaded"], expected, missing


def _pattern(spec: Spec, laid: Laid, start: datetime, window: int) -> list[datetime]:
    """A job's slots around the window (a minutely job also fires before and after it)."""
    if spec.kind != "minutely":
        return list(laid.slots)
    seconds = {s.astimezone(TZ).second for s in laid.slots}
    first = start - timedelta(seconds=120)
    return [
        t
        for t in (first + timedelta(seconds=n) for n in range(window + 240))
        if t.astimezone(TZ).second in seconds
    ]


# --- figures -----------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max, in milliseconds (nearest rank)."""
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000

    return rank(0.50), rank(0.99), ordered[-1] * 1000


def busy_load(n: int) -> list[subprocess.Popen[bytes]]:
    """`n` processes that keep a CPU busy each, at the same priority as coso."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)
    ]  # fmt: skip


def _next_minute(when: datetime) -> datetime:
    return (when + timedelta(minutes=1)).replace(second=0, microsecond=0)


def _sleep_until(when: datetime) -> None:
    while (left := (when - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 1.0))


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=180, help="seconds of slots measured")
    parser.add_argument(
        "--lead", type=float, default=60, help="seconds from writing the schedules to the window"
    )
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--sessions-share",
        type=float,
        default=0.2,
        help="share of the schedules that are items queued into broadcast sessions",
    )
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside it all")
    parser.add_argument("--keep", default="", help="keep coso's database and log in this folder")
    parser.add_argument("--apscheduler-alone", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.apscheduler_alone:
        run_apscheduler(args)
        return
    specs = make_specs(args.schedules, args.window, args.seed, args.sessions_share)
    burners = busy_load(args.busy)
    load_before = os.getloadavg()[0]
    try:
        with (
            contextlib.nullcontext(args.keep)
            if args.keep
            else tempfile.TemporaryDirectory(prefix="coso-timer-")
        ) as tmp:
            work = Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            with _database(args.database_url, work) as url:
                found, startup, expected, said, window_start = run_coso(
                    url, work, specs, args.window, args.lead
                )
        # The baseline's window: the same seconds of the minute, a whole minute later.
        start = _next_minute(datetime.now(UTC) + timedelta(seconds=args.lead / 2))
        aps, aps_loaded, aps_expected, aps_missing = baseline(args, specs, start)
    finally:
        for burner in burners:
            burner.kill()
    report(args, specs, window_start, found, startup, expected, said, aps, aps_loaded,
           aps_expected, aps_missing, load_before)  # fmt: skip


@contextlib.contextmanager
def _database(server_url: str | None, work: Path) -> Iterator[str]:
    if server_url is None:
        yield f"sqlite:///{work / 'coso.db'}"
        return
    with scratch_database(server_url) as url:
        yield url


def report(
    args: argparse.Namespace,
    specs: list[Spec],
    start: datetime,
    found: dict[tuple[int, datetime], float],
    startup: float,
    expected: int,
    said: str,
    aps: list[float],
    aps_loaded: float,
    aps_expected: int,
    aps_missing: int,
    load_before: float,
) -> None:
    kinds = Counter(s.kind for s in specs)
    per_second = Counter(slot for spec in specs for slot in lay(spec, start, args.window).slots)
    busiest = per_second.most_common(1)[0][1]
    database = "SQLite file" if args.database_url is None else "PostgreSQL"
    print(
        f"{args.schedules:,} schedules ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}), "
        f"{database}; window {args.window} s: {expected:,} slots, "
        f"{len(per_second)} distinct seconds, up to {busiest} in one"
    )
    print(
        f"load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}"
        + (f"  (with {args.busy} busy processes beside)" if args.busy else "")
    )
    print(f"coso start-up: process start to a loaded timer {startup:.2f} s" + (
        f" (the timer: {said})" if said else ""))  # fmt: skip
    print(f"APScheduler alone: {args.schedules:,} jobs added and started in {aps_loaded:.2f} s")
    missing = expected - len(found)
    coso = percentiles(list(found.values()))
    base = percentiles(aps)
    print(f"{'lateness (ms)':<22}{'p50':>9}{'p99':>9}{'max':>9}{'slots':>9}{'missing':>9}")
    for label, figures, count, lost in (
        ("coso serve", coso, len(found), missing),
        ("APScheduler alone", base, len(aps), aps_missing),
    ):
        print(
            f"{label:<22}{figures[0]:>9.1f}{figures[1]:>9.1f}{figures[2]:>9.1f}"
            f"{count:>9,}{lost:>9,}"
        )
    ratios = [c / b if b else math.inf for c, b in zip(coso, base, strict=True)]
    print(f"{'ratio (coso / APS)':<22}" + "".join(f"{r:>8.2f}x" for r in ratios))
    met = coso[1] <= GOAL_P99_MS and ratios[1] <= GOAL_RATIO and missing == 0
    print(
        f"goal: p99 <= {GOAL_P99_MS:.0f} ms and within {GOAL_RATIO:.0f}x of APScheduler alone, "
        f"no slot missing: {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
