"""A year of firing, checked against the rules computed independently: random RRULE
schedules and schedules queued into random sessions with random exceptions, in Hồ Chí Minh
City's zone and in one with daylight saving (Europe/Paris: a 02:30 that does not exist in
March and happens twice in October). Every slot the rules define becomes exactly one
occurrence, none falls outside them, none is lost when coso is down for days in between
(a restart), and no session's programme is ever longer than the session."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from content.models import ContentItem
from coso.db import make_engine
from schedules.firing import fire_due
from schedules.models import Occurrence, Plan, Schedule
from schedules.session_queue import Booked, Load, NoRoom, Queue, place
from schedules.sessions import ADD, CANCEL, DayChange, SessionDef, UnitPlace, instances

ZONES = ("Asia/Ho_Chi_Minh", "Europe/Paris")
FIRST_DAY, LAST_DAY = date(2026, 1, 1), date(2026, 12, 31)
DAYS = (LAST_DAY - FIRST_DAY).days + 1
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

# Hours around the clock changes on purpose: 02:xx is skipped in March in Paris and
# happens twice in October.
hours = st.sampled_from([0, 2, 5, 6, 11, 17, 23])
minutes = st.sampled_from([0, 15, 30, 45])


@st.composite
def rules(draw: st.DrawFn) -> tuple[datetime, str, datetime | None]:
    """(local start, RRULE, local until or None)."""
    freq = draw(st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]))
    parts = [f"FREQ={freq}"]
    if freq == "HOURLY":
        parts.append(f"INTERVAL={draw(st.integers(7, 13))}")
    else:
        parts.append(f"INTERVAL={draw(st.integers(1, 3))}")
    if freq == "WEEKLY":
        days = draw(st.sets(st.sampled_from(WEEKDAYS), min_size=1, max_size=3))
        parts.append("BYDAY=" + ",".join(sorted(days, key=WEEKDAYS.index)))
    if freq == "MONTHLY":
        parts.append(f"BYMONTHDAY={draw(st.integers(1, 28))}")
    if freq != "HOURLY" and draw(st.booleans()):
        chosen = sorted(draw(st.sets(hours, min_size=1, max_size=2)))
        parts.append(f"BYHOUR={','.join(str(h) for h in chosen)}")
        parts.append(f"BYMINUTE={draw(minutes)}")
    start_day = FIRST_DAY + timedelta(days=draw(st.integers(0, 300)))
    start = datetime.combine(start_day, time(draw(hours), draw(minutes)))
    until = None
    if draw(st.booleans()):
        until = start + timedelta(days=draw(st.integers(1, 365)))
    return start, ";".join(parts), until


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[SessionDef], list[DayChange]]:
    defs = []
    for n in range(draw(st.integers(1, 3))):
        days = frozenset(draw(st.sets(st.integers(1, 7), min_size=1, max_size=7)))
        start = time(draw(hours), draw(minutes))
        defs.append(
            SessionDef(
                "kind:phường", f"Buổi {n + 1}", days, start, draw(st.sampled_from([15, 30, 45]))
            )
        )
    changes = []
    for _ in range(draw(st.integers(0, 12))):
        day = FIRST_DAY + timedelta(days=draw(st.integers(0, DAYS - 1)))
        if draw(st.booleans()):
            which = draw(st.sampled_from(["", *(d.name for d in defs)]))
            changes.append(DayChange(day, CANCEL, "", which))
        else:
            changes.append(DayChange(day, ADD, "", "Thêm", time(draw(hours), draw(minutes)), 30))
    return defs, changes


@st.composite
def queued_items(draw: st.DrawFn) -> list[tuple[int, Queue, date, date]]:
    """(seconds, queue, first day, last day) of items queued in turn."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        first = FIRST_DAY + timedelta(days=draw(st.integers(0, 200)))
        last = first + timedelta(days=draw(st.integers(0, 160)))
        queue = Queue(draw(st.integers(1, 4)), (), draw(st.sampled_from(["next", "refuse"])))
        out.append((draw(st.integers(1, 30)) * 60, queue, first, min(last, LAST_DAY)))
    return out


def expected_rule_times(
    start: datetime, rule: str, until: datetime | None, tz: str, end: datetime
) -> set[datetime]:
    """The rule stepped through from its start with dateutil alone, each local time put in
    the zone: the oracle."""
    zone = ZoneInfo(tz)
    out = set()
    for local in rrulestr(rule, dtstart=start):
        at = local.replace(tzinfo=zone).astimezone(UTC)
        if at > end or (until is not None and local > until):
            break
        out.add(at)
    return out


def expected_sessions(defs: list[SessionDef], changes: list[DayChange], tz: str) -> set[datetime]:
    """Every day of the year: the sessions of its weekday not cancelled, and those added."""
    zone = ZoneInfo(tz)
    out = set()
    for n in range(DAYS):
        day = FIRST_DAY + timedelta(days=n)
        cancelled = {c.session for c in changes if c.day == day and c.kind == CANCEL}
        names = set()
        for d in defs:
            if day.isoweekday() in d.weekdays and "" not in cancelled and d.name not in cancelled:
                out.add(datetime.combine(day, d.start, zone).astimezone(UTC))
                names.add(d.name)
        for c in changes:
            if c.day == day and c.kind == ADD and c.session not in names and c.start is not None:
                out.add(datetime.combine(day, c.start, zone).astimezone(UTC))
                names.add(c.session)
    return out


UNIT = UnitPlace("00070", "Phường Hoàn Kiếm", "phường")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZONES), sessions(), queued_items())
def test_no_session_is_ever_overfilled_and_items_land_only_in_real_sessions(
    tz: str,
    drawn: tuple[list[SessionDef], list[DayChange]],
    items: list[tuple[int, Queue, date, date]],
) -> None:
    defs, changes = drawn
    real = expected_sessions(defs, changes, tz)
    year = instances(UNIT, defs, changes, FIRST_DAY, LAST_DAY, tz)
    assert {i.at for i in year} == real
    load = Load()
    before = datetime.combine(FIRST_DAY, time(), UTC) - timedelta(days=2)
    for n, (seconds, queue, first, last) in enumerate(items):
        found = [i for i in year if first <= i.day <= last]
        booked_before = {k: list(v) for k, v in load.items.items()}
        try:
            chosen = place(
                found,
                load,
                Booked(f"Tin {n}", seconds),
                queue,
                after=before,
                last=last,
                unit_name=UNIT.name,
                tz=tz,
            )
        except NoRoom as refused:
            # Refused: nothing of it stays booked... and it says which session came nearest.
            load.items = defaultdict(list, {k: v for k, v in booked_before.items()})
            assert refused.reason
            continue
        assert len({c.at for c in chosen}) == len(chosen)  # never twice in one session
        assert all(first <= c.day <= last and c.at in real for c in chosen)
        weeks = {i.day.isocalendar()[:2] for i in found}
        assert len(chosen) >= min(1, len(weeks))
    for instance in year:
        assert load.used(instance) <= instance.seconds


@pytest.fixture
def year_engine(engine: Engine) -> Engine:
    return engine


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(ZONES),
    st.lists(rules(), min_size=1, max_size=3),
    sessions(),
    queued_items(),
    st.lists(st.integers(1, 24 * 20), min_size=3, max_size=30),
    st.integers(0, 29),
    st.integers(1, 40),
)
def test_a_year_fires_every_slot_once_and_nothing_else_across_a_restart(
    year_engine: Engine,
    tz: str,
    clock_rules: list[tuple[datetime, str, datetime | None]],
    drawn: tuple[list[SessionDef], list[DayChange]],
    items: list[tuple[int, Queue, date, date]],
    steps: list[int],
    restart_at: int,
    down_days: int,
) -> None:
    engine = year_engine
    S, O = Schedule.__table__, Occurrence.__table__  # noqa: E741
    begin = datetime.combine(FIRST_DAY, time(), UTC) - timedelta(days=1)
    end = datetime.combine(LAST_DAY, time(), UTC) + timedelta(days=2)
    with engine.begin() as conn:
        conn.execute(delete(O))
        conn.execute(delete(S))
        plan_id = conn.scalar(select(Plan.__table__.c.id)) or _plan(conn)
        content_id = conn.scalar(select(ContentItem.__table__.c.id)) or _content(conn, plan_id)
    expected: dict[int, set[datetime]] = {}
    rows = []
    for start, rule, until in clock_rules:
        rows.append(
            {
                "start_local": start.isoformat(),
                "rrule": rule,
                "until_local": until.isoformat() if until else None,
                "rdates_local": [],
                "queue": None,
            }
        )
    defs, changes = drawn
    year = instances(UNIT, defs, changes, FIRST_DAY, LAST_DAY, tz)
    load = Load()
    zone = ZoneInfo(tz)
    for n, (seconds, queue, first, last) in enumerate(items):
        try:
            chosen = place(
                [i for i in year if first <= i.day <= last],
                load,
                Booked(f"Tin {n}", seconds),
                queue,
                after=begin,
                last=last,
                unit_name=UNIT.name,
                tz=tz,
            )
        except NoRoom:
            continue
        local = sorted({c.at.astimezone(zone).replace(tzinfo=None).isoformat() for c in chosen})
        rows.append(
            {
                "start_local": datetime.combine(first, time()).isoformat(),
                "rrule": None,
                "until_local": None,
                "rdates_local": local,
                "queue": {"per_week": queue.per_week},
            }
        )
    with engine.begin() as conn:
        for row in rows:
            sid = conn.execute(
                insert(S)
                .values(
                    plan_id=plan_id,
                    name="lịch",
                    content_id=content_id,
                    channel="web",
                    targets={},
                    exdates_local=[],
                    zone=tz,
                    priority="normal",
                    misfire_grace_seconds=900,
                    resend_unknown=False,
                    options={},
                    rotation=[],
                    rotation_weights={},
                    enabled=True,
                    fired_through=begin,
                    updated_at=begin,
                    **row,
                )
                .returning(S.c.id)
            ).scalar_one()
            if row["rrule"]:
                start = datetime.fromisoformat(row["start_local"])
                until = datetime.fromisoformat(row["until_local"]) if row["until_local"] else None
                expected[sid] = {
                    t for t in expected_rule_times(start, row["rrule"], until, tz, end)
                }
            else:
                expected[sid] = {
                    datetime.fromisoformat(x).replace(tzinfo=zone).astimezone(UTC)
                    for x in row["rdates_local"]
                }
    # The clock moves on in random steps; at one of them coso stops for days, then starts
    # again with a new connection pool (nothing of the old process kept).
    now = begin
    current = engine
    for n, hours_ in enumerate(steps):
        now = min(end, now + timedelta(hours=hours_))
        if n == restart_at:
            now = min(end, now + timedelta(days=down_days))
            current = make_engine(str(engine.url))
        _fire_all(current, now)
    _fire_all(current, end)
    if current is not engine:
        current.dispose()
    with engine.connect() as conn:
        found = conn.execute(select(O.c.schedule_id, O.c.scheduled_for)).all()
    got: dict[int, list[datetime]] = defaultdict(list)
    for sid, at in found:
        got[sid].append(at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC))
    for sid, want in expected.items():
        assert len(got[sid]) == len(set(got[sid])), sid  # exactly once
        assert set(got[sid]) == want, sid  # every slot of the rules, and none other


def _fire_all(engine: Engine, now: datetime) -> None:
    while fire_due(engine, now):  # a pass makes at most MOST_PER_PASS per schedule
        pass


def _plan(conn) -> int:  # type: ignore[no-untyped-def]
    return conn.execute(
        insert(Plan.__table__)
        .values(
            number="1/KH",
            title="Năm",
            issuer="",
            period_start=FIRST_DAY,
            period_end=LAST_DAY,
            zone="Asia/Ho_Chi_Minh",
            created_at=datetime(2025, 12, 1, tzinfo=UTC),
        )
        .returning(Plan.__table__.c.id)
    ).scalar_one()


def _content(conn, plan_id: int) -> int:  # type: ignore[no-untyped-def]
    return conn.execute(
        insert(ContentItem.__table__)
        .values(
            plan_id=plan_id,
            key="tin",
            kind="article",
            title="Tin",
            body="",
            state="approved",
            created_at=datetime(2025, 12, 1, tzinfo=UTC),
        )
        .returning(ContentItem.__table__.c.id)
    ).scalar_one()
