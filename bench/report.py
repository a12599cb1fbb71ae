"""A province's year in the activity log, then the whole province's report by commune and
week (`dispatcher.report.build.build_report`, as `coso report` runs it) next to the same
figures from one hand-written SELECT … GROUP BY over the log, on the same database in the
same run; prints both times and their ratio, after checking that the two agree.

    python -m bench.report --rows 1000000 [--database-url postgresql://...]

The year is written by coso's own write path, in big batches: the timer's occurrences,
fan-out, claims, the sender's and the devices' outcomes, expiries, a resend and a crash,
each one statement for many deliveries (as the dispatcher writes them under load).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, select, text, update

from bench.fanout import scratch_database
from channels.base import Outcome
from channels.endpoints import Endpoint, add_endpoints
from channels.states import (
    CONFIRMED,
    DELIVERED,
    EXPIRED,
    FAILED,
    PENDING,
    PLAYED,
    RETRY_WAIT,
    SENT,
    UNCONFIRMED,
)
from content.models import ContentItem, MediaAsset
from coso.config import load_settings
from coso.db import make_engine, migrate, sqlite_time, write
from coso.units import load_current_units, resolve_unit_codes
from dispatcher.fanout import fan_out_pending
from dispatcher.models import Delivery
from dispatcher.outcome_counts import differences, recount
from dispatcher.queries import find_plan
from dispatcher.report.build import build_report
from dispatcher.report.periods import Period
from dispatcher.resend import resend_failed
from dispatcher.transitions import (
    apply_outcomes,
    claim,
    has_work,
    move_where,
    recover_interrupted,
)
from schedules.firing import fire_due
from schedules.importer import import_plan
from schedules.models import Schedule
from schedules.planfile import PlanFile

PROVINCE = "20"  # Lạng Sơn: 65 communes
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR = 2021
DOWN = (date(YEAR, 8, 9), date(YEAR, 8, 15))  # coso was not running that week
NUMBER = "BENCH/BC"
CLIPS = {"loa-sang": 600.0, "loa-chieu": 480.0, "dai-xa": 900.0}  # seconds of audio
ON_AIR = ("loudspeaker", "station")
# Log entries a delivery makes, about: queued, sent, outcome (web: queued, published).
PER_COMMUNE_FIXED = 52 * 3 + 52 * 2  # the station's and the web site's
LOUDSPEAKER_SHARE = 0.57
D = Delivery.__table__


TIMES = 3  # calls of each side, in turn


def plan_file(communes: int) -> PlanFile:
    # Loudspeaker audio is stored below, as `coso content audio` stores it: their schedules
    # are enabled after that.
    schedule = {
        "targets": {"units": [PROVINCE]},
        "misfire_grace": "10m",
        "until": date(YEAR, 12, 31),
    }
    return PlanFile.model_validate(
        {
            "plan": {
                "number": NUMBER,
                "title": "Tuyên truyền cải cách hành chính năm 2021",
                "issuer": "UBND tỉnh Lạng Sơn",
                "period_start": date(YEAR, 1, 1),
                "period_end": date(YEAR, 12, 31),
            },
            "targets": [
                {"channel": "loudspeaker", "count": 10, "per": "week", "units": [PROVINCE]},
                {"channel": "station", "count": 1, "per": "week", "units": [PROVINCE]},
                {"channel": "sms", "count": 1, "per": "month"},
                {"channel": "web", "count": 4, "per": "month", "units": [PROVINCE]},
            ],
            "content": [
                {"key": "loa-sang", "title": "Bản tin sáng", "body": "…", "state": "approved"},
                {"key": "loa-chieu", "title": "Bản tin chiều", "body": "…", "state": "approved"},
                {"key": "dai-xa", "title": "Chuyên mục CCHC", "body": "…", "state": "approved"},
                {
                    "key": "tin-nhan",
                    "title": "Nhắc nộp hồ sơ",
                    "body": "UBND xa: ho so.",
                    "state": "approved",
                },
                {"key": "bai-viet", "title": "Thủ tục mới", "body": "…", "state": "approved"},
            ],
            "schedules": [
                {
                    **schedule,
                    "name": "Loa sáng",
                    "content": "loa-sang",
                    "channel": "loudspeaker",
                    "start": datetime(YEAR, 1, 1, 6, 0),
                    "rrule": "FREQ=DAILY",
                    "validity": "1h",
                    "enabled": False,
                },
                {
                    **schedule,
                    "name": "Loa chiều",
                    "content": "loa-chieu",
                    "channel": "loudspeaker",
                    "start": datetime(YEAR, 1, 1, 17, 0),
                    "rrule": "FREQ=DAILY",
                    "validity": "1h",
                    "enabled": False,
                },
                {
                    **schedule,
                    "name": "Đài xã",
                    "content": "dai-xa",
                    "channel": "station",
                    "start": datetime(YEAR, 1, 6, 17, 30),
                    "rrule": "FREQ=WEEKLY;BYDAY=WE",
                    "validity": "2h",
                },
                {
                    **schedule,
                    "name": "Tin nhắn",
                    "content": "tin-nhan",
                    "channel": "sms",
                    "start": datetime(YEAR, 1, 1, 8, 0),
                    "rrule": "FREQ=MONTHLY;BYMONTHDAY=1",
                    "validity": "6h",
                },
                {
                    **schedule,
                    "name": "Trang xã",
                    "content": "bai-viet",
                    "channel": "web",
                    "start": datetime(YEAR, 1, 1, 7, 0),
                    "rrule": "FREQ=WEEKLY;BYDAY=FR",
                    "validity": "12h",
                },
            ],
        }
    )


def endpoints(communes: list[str], rows: int) -> list[dict[str, Any]]:
    """Loudspeaker players, a station, a web site and phones in each commune, as many as
    make about `rows` log entries in the year."""
    per_commune = rows / len(communes)
    players = max(1, round(LOUDSPEAKER_SHARE * per_commune / (730 * 3)))
    phones = max(1, round((per_commune - 730 * 3 * players - PER_COMMUNE_FIXED) / (12 * 3)))
    out: list[dict[str, Any]] = []
    for u in communes:
        out += [{"channel": "station", "address": f"station:{u}", "unit_code": u}]
        out += [{"channel": "web", "address": f"bulletin:{u}", "unit_code": u}]
        out += [
            {"channel": "loudspeaker", "address": f"loa-{u}-{n}", "unit_code": u}
            for n in range(players)
        ]
        out += [
            {"channel": "sms", "address": f"+849{int(u):05d}{n:04d}", "unit_code": u}
            for n in range(phones)
        ]
    return out


def slots() -> Iterator[datetime]:
    """Every slot of the year at which a schedule fires, in order, in UTC."""
    day = date(YEAR, 1, 1)
    while day.year == YEAR:
        times = [(6, 0), (17, 0)]  # the loudspeakers, every day
        if day.weekday() == 4:
            times.append((7, 0))  # the web site, Fridays
        if day.day == 1:
            times.append((8, 0))  # SMS, the first of the month
        if day.weekday() == 2:
            times.append((17, 30))  # the station, Wednesdays
        for hour, minute in sorted(times):
            yield datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)
        day += timedelta(days=1)


def prepare(engine: Engine, rows: int) -> Any:
    """The province: its units, endpoints, and the plan with its audio; returns the plan."""
    migrate(engine)
    load_current_units(engine)
    communes = sorted(resolve_unit_codes(engine, [PROVINCE])[PROVINCE] - {PROVINCE})
    communes = communes[: max(2, min(len(communes), rows // 15_000))]
    start = datetime(YEAR - 1, 12, 31, tzinfo=UTC)
    add_endpoints(engine, endpoints(communes, rows), start)
    settings = load_settings(
        None, channels={"sms": {"account_sid": "AC" + "0" * 32, "auth_token": "x"}}
    )
    import_plan(engine, settings, plan_file(len(communes)), start)
    plan = find_plan(engine, NUMBER)
    C, M = ContentItem.__table__, MediaAsset.__table__
    with write(engine) as conn:  # the loudspeakers' and the station's prepared audio
        ids = dict(conn.execute(select(C.c.key, C.c.id).where(C.c.plan_id == plan.id)).all())
        conn.execute(
            M.insert(),
            [
                {
                    "content_id": ids[key],
                    "sha256": f"{n:064x}",
                    "file_name": f"{n:064x}.mp3",
                    "duration_seconds": seconds,
                    "loudness_lufs": -16.0,
                    "size_bytes": int(seconds * 16_000),
                    "source_name": f"{key}.wav",
                    "created_at": start,
                }
                for n, (key, seconds) in enumerate(CLIPS.items())
            ],
        )
        S = Schedule.__table__
        conn.execute(update(S).where(S.c.plan_id == plan.id).values(enabled=True))
    return plan


def through_coso(engine: Engine, plan: Any, seed: int) -> None:
    """The year through coso's own functions, slot by slot: the timer, fan-out, claims,
    outcomes, a resend, a crash and expiries, which keep the outcome counts as they go."""
    rng = random.Random(seed)
    down = (
        datetime.combine(DOWN[0], datetime.min.time(), ZONE),
        datetime.combine(DOWN[1] + timedelta(days=1), datetime.min.time(), ZONE),
    )
    for slot in slots():
        if down[0] <= slot < down[1]:
            continue  # found missed at the first slot after the week
        now = slot + timedelta(seconds=1)
        fire_due(engine, now)
        if not fan_out_pending(engine, now, 5000):
            continue
        _play_out(engine, plan.id, rng, now)


def _play_out(engine: Engine, plan_id: int, rng: random.Random, now: datetime) -> None:
    """What became of the slot's deliveries: sent, then each device's or person's answer,
    a resend of failed SMS, a crash losing some, and the validity's end."""
    sms_sent = False
    for channel in ("loudspeaker", "station", "sms", "web"):
        with engine.connect() as conn:
            if not has_work(conn, channel, now):
                continue
        with write(engine) as conn:
            crashed = []
            if channel == "sms":  # a dispatcher dies holding a few messages: unknown
                crashed = claim(conn, channel, now, 3, "bench:crashed")
            claimed = claim(conn, channel, now, 1_000_000, "bench:1")
            if crashed:
                recover_interrupted(conn, now, channel, False, ["bench:crashed"])
        if not claimed:
            continue
        sms_sent |= channel == "sms"
        at = now + timedelta(seconds=5)
        first, second = [], []
        for d in claimed:
            roll = rng.random()
            if channel == "web":
                if roll < 0.97:
                    first.append(Outcome(d.id, DELIVERED, "published", at, "dispatcher"))
                else:
                    first.append(Outcome(d.id, FAILED, "failed", at, "dispatcher", error="503"))
                continue
            if channel == "loudspeaker" and roll < 0.02:  # the broker was away
                first.append(Outcome(d.id, RETRY_WAIT, "retry", at, "dispatcher",
                                     retry_at=at + timedelta(hours=2)))  # fmt: skip
                continue
            first.append(Outcome(d.id, SENT, "sent", at, "dispatcher", provider_id=f"P{d.id}"))
            later = at + timedelta(minutes=10)
            if channel == "loudspeaker":
                if roll < 0.82:
                    second.append(Outcome(d.id, PLAYED, "played", later, f"player:{d.endpoint_id}"))
                elif roll < 0.9:
                    second.append(
                        Outcome(d.id, FAILED, "failed", later, "player", error="mất điện")
                    )
            elif channel == "station":
                if roll < 0.7:
                    second.append(Outcome(d.id, CONFIRMED, "confirmed", later, "van-hanh"))
                elif roll < 0.8:
                    second.append(Outcome(d.id, FAILED, "could_not_play", later, "van-hanh"))
            elif roll < 0.75:
                second.append(Outcome(d.id, DELIVERED, "delivered", later, "gateway"))
            elif roll < 0.87:
                second.append(Outcome(d.id, FAILED, "undelivered", later, "gateway", error="30003"))
            elif roll < 0.95:
                second.append(Outcome(d.id, FAILED, "failed", later, "gateway", error="30008"))
        for wave in (first, second):
            with write(engine) as conn:
                apply_outcomes(conn, wave)
    # An operator resends the plan's failed deliveries still valid (SMS, the same hour).
    if sms_sent and resend_failed(engine, plan_id, now + timedelta(minutes=30), "bench"):
        at = now + timedelta(minutes=31)
        with write(engine) as conn:
            resent = claim(conn, "sms", at, 1_000_000, "bench:1")
            apply_outcomes(conn, [Outcome(d.id, SENT, "sent", at, "dispatcher") for d in resent])
            apply_outcomes(
                conn,
                [Outcome(d.id, DELIVERED, "delivered", at, "gateway") for d in resent],
            )
    # The validity's end: what no player answered expires, what no operator confirmed
    # stays unconfirmed, and what was never sent expires.
    end = now + timedelta(hours=12)
    with write(engine) as conn:
        for channel, states, to in (
            ("loudspeaker", (SENT, PENDING, RETRY_WAIT), EXPIRED),
            ("station", (SENT,), UNCONFIRMED),
        ):
            move_where(
                conn,
                and_(D.c.channel == channel, D.c.state.in_(states), D.c.expires_at <= end),
                to,
                at=end,
                event=to,
                actor="dispatcher",
                detail="no answer before its validity ended",
            )


# --- the year in bulk ------------------------------------------------------------------

SCHEDULE_AT = {(6, 0): "Loa sáng", (17, 0): "Loa chiều", (7, 0): "Trang xã", (8, 0): "Tin nhắn",
               (17, 30): "Đài xã"}  # fmt: skip
Step = tuple[timedelta, str, str, str, "str | None"]  # after the slot: event, state, actor, detail


def _steps(channel: str, roll: float, endpoint: int) -> list[Step]:
    """A delivery's log entries after `queued`, as coso writes them for each outcome."""
    sent: Step = (timedelta(seconds=6), "sent", SENT, "dispatcher", None)
    later = timedelta(minutes=10)
    end = timedelta(hours=12)
    gone: Step = (end, EXPIRED, EXPIRED, "dispatcher", "no answer before its validity ended")
    if channel == "web":
        if roll < 0.97:
            return [(timedelta(seconds=6), "published", DELIVERED, "dispatcher", None)]
        return [(timedelta(seconds=6), "failed", FAILED, "dispatcher", "503")]
    if channel == "loudspeaker":
        if roll < 0.02:  # the broker was away, then the validity ended
            return [(timedelta(seconds=6), "retry", RETRY_WAIT, "dispatcher", None), gone]
        if roll < 0.82:
            return [sent, (later, "played", PLAYED, f"player:{endpoint}", None)]
        if roll < 0.9:
            return [sent, (later, "failed", FAILED, "player", "mất điện")]
        return [sent, gone]
    if channel == "station":
        if roll < 0.7:
            return [sent, (later, "confirmed", CONFIRMED, "van-hanh", None)]
        if roll < 0.8:
            return [sent, (later, "could_not_play", FAILED, "van-hanh", None)]
        return [sent, (end, UNCONFIRMED, UNCONFIRMED, "dispatcher", "nobody confirmed it")]
    if roll < 0.0003:  # a dispatcher died holding it
        return [(timedelta(seconds=6), "unknown", "unknown", "dispatcher", "outcome lost")]
    if roll < 0.75:
        return [sent, (later, "delivered", DELIVERED, "gateway", None)]
    if roll < 0.87:
        return [sent, (later, "undelivered", FAILED, "gateway", "30003")]
    if roll < 0.95:  # failed, sent again by an operator, delivered
        again = timedelta(minutes=31)
        return [
            sent,
            (later, "failed", FAILED, "gateway", "30008"),
            (timedelta(minutes=30), "resend", PENDING, "bench", "gửi lại"),
            (again, "sent", SENT, "dispatcher", None),
            (again, "delivered", DELIVERED, "gateway", None),
        ]
    return [sent]


def in_bulk(engine: Engine, plan: Any, seed: int) -> None:
    """The same kind of year written in bulk: occurrences, deliveries and their log
    entries as coso writes them, inserted by the driver; then the outcome counts counted
    from the log, as `coso report PLAN --rebuild` does."""
    rng = random.Random(seed)
    S, E = Schedule.__table__, Endpoint.__table__
    with engine.connect() as conn:
        schedules = {r.name: r for r in conn.execute(select(S).where(S.c.plan_id == plan.id))}
        targets = {
            sch.channel: conn.execute(
                select(E.c.id, E.c.unit_code).where(E.c.channel == sch.channel).order_by(E.c.id)
            ).all()
            for sch in schedules.values()
        }
    down = (
        datetime.combine(DOWN[0], datetime.min.time(), ZONE),
        datetime.combine(DOWN[1] + timedelta(days=1), datetime.min.time(), ZONE),
    )
    back = next(s for s in slots() if s >= down[1]) + timedelta(seconds=1)
    occurrences, deliveries, entries = [], [], []
    for slot in slots():
        local = slot.astimezone(ZONE)
        sch = schedules[SCHEDULE_AT[(local.hour, local.minute)]]
        missed = down[0] <= slot < down[1]
        fired = back if missed else slot + timedelta(seconds=1)
        expires = slot + timedelta(seconds=sch.validity_seconds)
        occurrence = len(occurrences) + 1
        occurrences.append(
            (occurrence, sch.id, slot, "missed" if missed else "due", fired,
             int((fired - slot).total_seconds()), expires, fired)
        )  # fmt: skip
        waves: list[list[tuple[Any, ...]]] = [[] for _ in range(6)]  # first entries, seconds…
        for endpoint, unit in targets[sch.channel]:
            delivery = len(deliveries) + 1
            base = (plan.id, sch.id, occurrence, delivery, sch.content_id, sch.channel, unit,
                    endpoint)  # fmt: skip
            if missed:
                steps: list[Step] = []
                first: Step = (fired - slot, "missed", "missed", "timer", "coso was not running")
            else:
                steps = _steps(sch.channel, rng.random(), endpoint)
                first = (timedelta(seconds=1), "queued", PENDING, "timer", None)
            state = first[2]
            for n, (after, event, to, actor, detail) in enumerate([first, *steps]):
                waves[n].append((slot + after, *base, event, to, actor, detail))
                state = to
            deliveries.append(
                (delivery, occurrence, endpoint, plan.id, sch.id, sch.content_id, sch.channel,
                 unit, 0, slot, state, len(steps) and 1, slot, expires,
                 f"P{delivery}" if steps else None, fired, slot + (steps or [first])[-1][0])
            )  # fmt: skip
        for wave in waves:
            entries += wave
    _insert(engine, "occurrence", OCCURRENCE_COLUMNS, occurrences)
    _insert(engine, "delivery", DELIVERY_COLUMNS, deliveries)
    _insert(engine, "activity_entry", ENTRY_COLUMNS, entries)
    if engine.dialect.name == "postgresql":  # ids given: the sequences move past them
        with write(engine) as conn:
            for table in ("occurrence", "delivery"):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                ))  # fmt: skip
    with write(engine) as conn:
        conn.execute(update(S).where(S.c.plan_id == plan.id).values(fired_through=back))


OCCURRENCE_COLUMNS = ("id", "schedule_id", "scheduled_for", "status", "fired_at",
                      "late_seconds", "expires_at", "fanned_out_at")  # fmt: skip
DELIVERY_COLUMNS = ("id", "occurrence_id", "endpoint_id", "plan_id", "schedule_id", "content_id",
                    "channel", "unit_code", "priority", "scheduled_for", "state", "attempts",
                    "next_attempt_at", "expires_at", "provider_id", "created_at",
                    "updated_at")  # fmt: skip
ENTRY_COLUMNS = ("at", "plan_id", "schedule_id", "occurrence_id", "delivery_id", "content_id",
                 "channel", "unit_code", "endpoint_id", "event", "state", "actor",
                 "detail")  # fmt: skip


def _insert(engine: Engine, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    """Rows through the driver: COPY on PostgreSQL, executemany on SQLite."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        names = ", ".join(columns)
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.execute("BEGIN")
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})",
                [tuple(sqlite_time(v) if isinstance(v, datetime) else v for v in r) for r in rows],
            )
        raw.commit()
    finally:
        raw.close()


# --- the hand-written query -------------------------------------------------------------

FIGURE_SQL = {
    "done": "state IN ('played', 'confirmed', 'delivered', 'displayed')",
    "played": "state = 'played'",
    "confirmed": "state = 'confirmed'",
    "delivered": "state = 'delivered'",
    "displayed": "state = 'displayed'",
    "sent": "state = 'sent'",
    "waiting": "state IN ('pending', 'sending', 'retry_wait')",
    "unconfirmed": "state = 'unconfirmed'",
    "missed": "state = 'missed'",
    "expired": "state = 'expired'",
    "failed": "state = 'failed'",
    "undelivered": "state = 'failed' AND event = 'undelivered'",
    "unknown": "state = 'unknown'",
}


def hand_written_sql(dialect: str) -> str:
    """Each delivery's last entry with a state, with its slot and clip, grouped by channel,
    commune and week of the slot (local time), and by channel alone with the distinct
    endpoints reached: one statement."""
    if dialect == "postgresql":
        week = "CAST(date_trunc('week', scheduled_for AT TIME ZONE 'Asia/Ho_Chi_Minh') AS date)"
        week = f"CAST({week} AS varchar)"
    else:  # the zone is UTC+7 all year
        week = "date(scheduled_for, '+7 hours', 'weekday 0', '-6 days')"
    sums = ", ".join(f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)" for cond in FIGURE_SQL.values())
    done = FIGURE_SQL["done"]
    return f"""
WITH outcome AS MATERIALIZED (
  SELECT a.channel, a.unit_code, a.endpoint_id, a.state, a.event, o.scheduled_for,
         CASE WHEN a.channel IN ('loudspeaker', 'station') THEN m.duration_seconds END AS clip
  FROM (SELECT delivery_id, max(id) AS id FROM activity_entry
        WHERE plan_id = :plan AND delivery_id IS NOT NULL AND state IS NOT NULL
        GROUP BY delivery_id) AS last
  JOIN activity_entry AS a ON a.id = last.id
  JOIN occurrence AS o ON o.id = a.occurrence_id
  LEFT JOIN media_asset AS m ON m.content_id = a.content_id
  WHERE o.scheduled_for >= :lo AND o.scheduled_for < :hi
)
SELECT channel, unit_code, {week} AS week, count(*), {sums},
       sum(CASE WHEN {done} THEN coalesce(clip, 0) ELSE 0 END), NULL
FROM outcome GROUP BY channel, unit_code, {week}
UNION ALL
SELECT channel, NULL, NULL, count(*), {sums},
       sum(CASE WHEN {done} THEN coalesce(clip, 0) ELSE 0 END),
       count(DISTINCT CASE WHEN {done} THEN endpoint_id END)
FROM outcome GROUP BY channel
"""


Figures = dict[tuple[str, str | None, str | None], tuple[Any, ...]]


def hand_written(engine: Engine, plan_id: int, period: Period) -> Figures:
    lo = datetime.combine(period.start, datetime.min.time(), ZONE)
    hi = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), ZONE)
    params: dict[str, Any] = {"plan": plan_id, "lo": lo, "hi": hi}
    if engine.dialect.name == "sqlite":
        params |= {"lo": _sqlite(lo), "hi": _sqlite(hi)}
    out: Figures = {}
    with engine.connect() as conn:
        for row in conn.execute(text(hand_written_sql(engine.dialect.name)), params):
            channel, unit, week, *counts, seconds, reached = row
            out[(channel, unit, week)] = (*counts, round(seconds / 60, 1), reached)
    return out


def _sqlite(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


KEYS = ("expected", *FIGURE_SQL)


def coso_figures(report: Any) -> Figures:
    out: Figures = {}
    unit_at, week_at, channel_at = (report.by.index(d) for d in ("unit", "week", "channel"))
    for line in report.lines:
        t = line.tally
        key = (line.key[channel_at], line.key[unit_at] or None, line.key[week_at])
        out[key] = (*(t.counts[k] for k in KEYS), t.airtime_minutes, None)
    for channel, t in report.channels.items():
        out[(channel, None, None)] = (*(t.counts[k] for k in KEYS), t.airtime_minutes, t.reached)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="log entries, about")
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument(
        "--through-coso",
        action="store_true",
        help="write the year slot by slot through coso's own functions (slow: minutes), "
        "which keep the outcome counts as they write, instead of in bulk",
    )
    args = parser.parse_args()
    with scratch_database(args.database_url) as url:
        run(url, args.rows, args.seed, args.through_coso)


def run(url: str, rows: int, seed: int, slot_by_slot: bool = False) -> None:
    engine = make_engine(url)
    print(f"database: {engine.url.render_as_string(hide_password=True)}  rows: about {rows}")
    started = time.perf_counter()
    plan = prepare(engine, rows)
    if slot_by_slot:
        through_coso(engine, plan, seed)
    else:
        in_bulk(engine, plan, seed)
    written = time.perf_counter() - started
    if not slot_by_slot:
        started = time.perf_counter()
        counted = recount(engine, plan.id)
        print(
            f"outcome counts from the log (as coso report --rebuild): {counted:,} rows in "
            f"{time.perf_counter() - started:.1f} s"
        )
    if engine.dialect.name == "postgresql":  # the planner's statistics, as autovacuum keeps
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        entries = conn.scalar(text("SELECT count(*) FROM activity_entry"))
        deliveries = conn.scalar(text("SELECT count(*) FROM delivery"))
        states = dict(
            conn.execute(text("SELECT state, count(*) FROM delivery GROUP BY state")).all()
        )
    print(
        f"the year: {entries:,} log entries, {deliveries:,} deliveries, written in "
        f"{written:.1f} s; outcomes {dict(sorted(states.items()))}"
    )
    period = Period(date(YEAR, 1, 1), date(YEAR, 12, 31), f"năm {YEAR}")
    started = time.perf_counter()
    wrong = differences(engine, plan.id)
    if wrong:
        raise SystemExit(f"the outcome counts disagree with the log: {wrong[:5]}")
    print(f"outcome counts agree with the log ({time.perf_counter() - started:.1f} s to check)")

    # Each side three times, in turn: the medians count (one call can meet a busy moment
    # of a shared machine); coso's first call, in a new process, is printed too.
    hand_times, coso_times = [], []
    for _ in range(TIMES):
        started = time.perf_counter()
        baseline = hand_written(engine, plan.id, period)
        hand_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = build_report(
            engine, plan, period, unit=PROVINCE, by=("unit", "week"), now=datetime.now(UTC)
        )
        coso_times.append(time.perf_counter() - started)
    hand_seconds, coso_seconds = statistics.median(hand_times), statistics.median(coso_times)

    got = coso_figures(report)
    if got != baseline:
        wrong = sorted(k for k in got.keys() | baseline.keys() if got.get(k) != baseline.get(k))
        for k in wrong[:10]:
            print(f"  {k}: coso {got.get(k)} hand-written {baseline.get(k)}")
        raise SystemExit(f"the report and the hand-written query disagree on {len(wrong)} lines")
    lines = sum(1 for k in got if k[1] is not None)
    print(f"figures agree: {lines} lines (channel × commune × week) and {len(report.channels)}"
          " channel totals")  # fmt: skip
    for label, seconds, each in (
        ("coso report", coso_seconds, coso_times),
        ("hand-written", hand_seconds, hand_times),
    ):
        runs = ", ".join(f"{t:.3f}" for t in each)
        print(f"{label:<14} {seconds:6.3f} s  (median of {runs}; the first in this process)")
    print(
        f"ratio (coso time / hand-written time): {coso_seconds / hand_seconds:.2f}x  "
        "(goal: within 1.5x, and at most 1 s)"
    )


if __name__ == "__main__":
    main()
