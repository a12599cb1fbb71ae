"""The timer's due index: each slot fires once, at its time, from what the tables say now.

Driven with a manual clock: the tests move it and run the timer's jobs themselves, its
APScheduler paused."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.base import JobLookupError
from dateutil.rrule import rrulestr
from sqlalchemy import Engine, func, select, update

from coso.clock import ManualClock
from coso.config import Settings
from schedules.firing import fire_due
from schedules.importer import import_plan_file
from schedules.models import Occurrence, Schedule
from schedules.timer import Timer
from schedules.timing import Timing
from tests.plans import write_plan

S = Schedule.__table__
O = Occurrence.__table__  # noqa: E741
# The weekly plan's first slot: Monday 03/05/2021 06:00 in Asia/Ho_Chi_Minh.
MONDAY = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)
EVENING = MONDAY - timedelta(minutes=15)  # what schedules added below have fired up to


def _schedules(engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock) -> Any:
    """The weekly plan; its schedule row, as a model for more."""
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    with engine.connect() as conn:
        return conn.execute(select(S)).one()


def _add(
    engine: Engine, model: Any, name: str, start: str, rrule: str | None = None, **values: Any
) -> int:
    """A schedule like `model` (fired up to the same time unless told)."""
    row = {k: v for k, v in model._mapping.items() if k != "id"}
    row.update(name=name, start_local=start, rrule=rrule, until_local=None, exdates_local=[])
    row.update(values)
    with engine.begin() as conn:
        return int(conn.execute(S.insert().returning(S.c.id), [row]).scalar_one())


def _fired(engine: Engine) -> list[tuple[int, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(select(O.c.schedule_id, O.c.scheduled_for).order_by(O.c.id)).all()
    return [(i, t.astimezone(UTC)) for i, t in rows]


@pytest.fixture
def timers(engine: Engine, clock: ManualClock) -> Iterator[list[Timer]]:
    made: list[Timer] = []

    def make() -> Timer:
        timer = Timer(
            engine,
            clock,
            lambda: None,
            horizon=timedelta(hours=1),
            reconcile_every=timedelta(hours=1),  # the tests run it
        )
        # Its jobs wait: the tests run them, at the times they set.
        timer._scheduler.start = functools.partial(timer._scheduler.start, paused=True)
        made.append(timer)
        return timer

    yield make  # type: ignore[misc]
    for timer in made:
        timer.stop()


def test_each_slot_fires_once_however_often_its_job_and_the_reconcile_run(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    same = _add(engine, model, "same slot", "2021-05-03T06:00:00", "FREQ=DAILY")
    clock.set(MONDAY - timedelta(minutes=30))
    first, second = timers(), timers()  # a second process's timer, as after a takeover
    first.start()
    second.start()
    assert first.slots() == {MONDAY: sorted([model.id, same])}
    clock.set(MONDAY + timedelta(milliseconds=3))
    for timer in (first, second, first):
        timer._fire_slot(MONDAY)
        timer.reconcile()
    assert sorted(_fired(engine)) == [(model.id, MONDAY), (same, MONDAY)]
    with engine.connect() as conn:
        fired_at = conn.scalars(select(O.c.fired_at)).all()
    # Stamped when written, by the clock: 3 ms after the slot.
    assert {t.astimezone(UTC) for t in fired_at} == {MONDAY + timedelta(milliseconds=3)}


def test_a_slot_fires_only_the_schedules_due_then(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    others = [
        _add(engine, model, f"other {n}", f"2021-05-03T06:{n + 1:02d}:00", "FREQ=DAILY")
        for n in range(40)
    ]
    clock.set(MONDAY - timedelta(minutes=1))
    timer = timers()
    timer.start()
    with engine.connect() as conn:
        before = dict(conn.execute(select(S.c.id, S.c.fired_through)).all())
    clock.set(MONDAY)
    timer._fire_slot(MONDAY)
    assert _fired(engine) == [(model.id, MONDAY)]
    with engine.connect() as conn:
        after = dict(conn.execute(select(S.c.id, S.c.fired_through)).all())
    assert after[model.id].astimezone(UTC) == MONDAY
    assert all(after[i] == before[i] for i in others)  # not read for writing, not moved


def test_an_edited_schedule_fires_at_its_new_time_and_not_its_old(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    clock.set(MONDAY - timedelta(minutes=30))
    timer = timers()
    timer.start()
    clock.advance(timedelta(seconds=1))
    # As a plan update does: new times from now on, stamped.
    with engine.begin() as conn:
        conn.execute(
            update(S)
            .where(S.c.id == model.id)
            .values(
                start_local="2021-05-03T06:10:00",
                updated_at=clock.now(),
                fired_through=clock.now(),
            )
        )
    new = MONDAY + timedelta(minutes=10)
    # The old time's job runs before any reconcile has seen the edit: the row decides.
    clock.set(MONDAY)
    timer._fire_slot(MONDAY)
    assert _fired(engine) == []
    timer.reconcile()
    assert timer.slots() == {new: [model.id]}
    clock.set(new)
    timer._fire_slot(new)
    timer.reconcile()
    assert _fired(engine) == [(model.id, new)]


def test_a_schedule_turned_off_is_dropped_and_one_added_is_taken_up_whatever_its_stamp(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    clock.set(MONDAY - timedelta(minutes=30))
    timer = timers()
    timer.start()
    clock.advance(timedelta(seconds=1))
    with engine.begin() as conn:
        conn.execute(
            update(S).where(S.c.id == model.id).values(enabled=False, updated_at=clock.now())
        )
    added = _add(engine, model, "added", "2021-05-03T06:05:00")  # stamped at the import
    timer.reconcile()
    later = MONDAY + timedelta(minutes=5)
    assert timer.slots() == {later: [added]}
    clock.set(later)
    timer.reconcile()
    assert _fired(engine) == [(added, later)]


def test_a_lost_job_or_a_clock_jump_cannot_skip_a_slot(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    hourly = _add(
        engine, model, "hourly", "2021-05-02T00:30:00", "FREQ=HOURLY", fired_through=EVENING
    )
    clock.set(MONDAY - timedelta(minutes=10))
    timer = timers()
    timer.start()
    for job in timer.pending_jobs():
        with contextlib.suppress(JobLookupError):
            timer._scheduler.remove_job(job)  # lost
    clock.set(MONDAY + timedelta(hours=2))  # a jump past two horizons' worth of slots
    timer.reconcile()
    timer.reconcile()
    half_past = [MONDAY + timedelta(minutes=30 + 60 * n) for n in range(2)]
    assert sorted(_fired(engine)) == sorted([(model.id, MONDAY)] + [(hourly, t) for t in half_past])


def test_a_restart_fires_what_fell_due_while_it_was_down(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    hourly = _add(
        engine, model, "hourly", "2021-05-02T00:30:00", "FREQ=HOURLY", fired_through=EVENING
    )
    clock.set(MONDAY - timedelta(minutes=10))
    before = timers()
    before.start()
    before.stop()
    clock.set(MONDAY + timedelta(minutes=45))  # down over both slots
    timers().start()
    assert sorted(_fired(engine)) == [(model.id, MONDAY), (hourly, MONDAY + timedelta(minutes=30))]
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(O.c.schedule_id, O.c.status)).all())
    # 45 and 15 minutes late: past the 30 minutes' grace, and within it.
    assert statuses == {model.id: "missed", hourly: "due"}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(O)) == 2


def test_fired_at_is_when_the_occurrence_is_written(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    _schedules(engine, settings, tmp_path, clock)
    clock.set(MONDAY + timedelta(seconds=3))  # the pass looked at the slot, then wrote later
    assert fire_due(engine, MONDAY, clock=clock) == 1
    with engine.connect() as conn:
        row = conn.execute(select(O.c.fired_at, O.c.late_seconds)).one()
    assert row.fired_at.astimezone(UTC) == MONDAY + timedelta(seconds=3)
    assert row.late_seconds == 3


RULES = ["FREQ=MINUTELY;INTERVAL=7", "FREQ=HOURLY;BYMINUTE=0,30", "FREQ=DAILY;BYHOUR=1,2,3"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Santiago", "Asia/Ho_Chi_Minh"])
def test_the_timers_short_windows_give_the_times_of_the_rule(rule: str, zone: str) -> None:
    """The timer asks a day at a time, where no margin around the window is stepped through:
    across changes of the offset, its windows give what one long window gives, which is
    what RFC 5545 says."""
    start = datetime(2024, 1, 1, 0, 15)
    timing = Timing(start_local=start, zone=zone, rrule=rule)
    plain = rrulestr(rule, dtstart=start)
    for day in (datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 10, 26, tzinfo=UTC)):
        lo, hi = day - timedelta(days=40), day + timedelta(days=3)
        whole = timing.fire_times(lo, hi, most=100_000)
        naive_lo, naive_hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
        local = plain.between(naive_lo - timedelta(days=2), naive_hi + timedelta(days=2))
        utc = {t.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) for t in local}
        assert set(whole) == {t for t in utc if lo < t <= hi}, (rule, zone, day)
        got, after = [], lo
        for hours in cycle([23, 1, 24, 5, 17]):
            until = min(hi, after + timedelta(hours=hours))
            got += timing.fire_times(after, until)
            after = until
            if after >= hi:
                break
        assert got == whole, (rule, zone, day)
        # Windows starting and ending every ten minutes around the change of offset.
        for minutes in range(0, 3 * 24 * 60, 10):
            after = day + timedelta(minutes=minutes - 24 * 60)
            for length in (timedelta(minutes=50), timedelta(hours=23)):
                part = [t for t in whole if after < t <= after + length]
                assert timing.fire_times(after, after + length) == part, (rule, zone, after)


def test_a_schedule_queued_into_sessions_fires_at_its_sessions_and_nowhere_else(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, timers: Any
) -> None:
    """Its explicit times (the sessions it was placed in) are what the timer indexes: its
    start, a day before, is no time of its own."""
    model = _schedules(engine, settings, tmp_path, clock)
    evening = MONDAY + timedelta(hours=11)  # 17:00 local
    queued = _add(
        engine,
        model,
        "queued",
        "2021-05-02T00:00:00",
        rdates_local=["2021-05-03T06:00:00", "2021-05-03T17:00:00"],
        queue={"per_week": 2, "sessions": 2, "when_full": "next", "length": None},
    )
    clock.set(MONDAY - timedelta(minutes=30))
    timer = timers()
    timer.start()
    assert timer.slots()[MONDAY] == sorted([model.id, queued])
    clock.set(MONDAY)
    timer._fire_slot(MONDAY)
    clock.set(evening - timedelta(minutes=30))
    timer.reconcile()
    assert timer.slots().get(evening) == [queued]
    clock.set(evening)
    timer._fire_slot(evening)
    assert sorted(_fired(engine)) == sorted(
        [(model.id, MONDAY), (queued, MONDAY), (queued, evening)]
    )


def _cueing(engine: Engine, clock: ManualClock, cues: dict[str, timedelta]) -> Timer:
    timer = Timer(
        engine,
        clock,
        lambda: None,
        horizon=timedelta(hours=1),
        reconcile_every=timedelta(hours=1),
        cue_ahead=lambda channel: cues.get(channel, timedelta(0)),
    )
    timer._scheduler.start = functools.partial(timer._scheduler.start, paused=True)
    return timer


def _fired_at(engine: Engine) -> dict[int, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(select(O.c.schedule_id, O.c.fired_at).order_by(O.c.id)).all()
    return {i: t.astimezone(UTC) for i, t in rows}


def test_a_schedule_on_a_cued_channel_fires_its_cue_ahead_of_the_slot_and_the_rest_at_it(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)  # "web", at MONDAY
    screens = _add(engine, model, "screens", "2021-05-03T06:00:00", "FREQ=DAILY", channel="sms")
    longer = _add(engine, model, "longer", "2021-05-03T06:00:00", "FREQ=DAILY", channel="boards")
    clock.set(MONDAY - timedelta(minutes=30))
    timer = _cueing(engine, clock, {"sms": timedelta(seconds=10), "boards": timedelta(seconds=40)})
    try:
        timer.start()
        assert f"cue:{MONDAY.isoformat()}" in timer.pending_jobs()
        clock.set(MONDAY - timedelta(seconds=50))
        timer._cue_slot(MONDAY)  # a job run before its time (a clock behind): nothing
        assert _fired(engine) == []
        clock.set(MONDAY - timedelta(seconds=40))
        timer._cue_slot(MONDAY)
        assert _fired(engine) == [(longer, MONDAY)]  # the longest cue first, alone
        # The one with the shorter cue has its own job now.
        assert f"cue:{MONDAY.isoformat()}" in timer.pending_jobs()
        clock.set(MONDAY - timedelta(seconds=10))
        timer._cue_slot(MONDAY)
        clock.set(MONDAY)
        timer._fire_slot(MONDAY)
        timer.reconcile()
        assert sorted(_fired(engine)) == sorted(
            [(longer, MONDAY), (screens, MONDAY), (model.id, MONDAY)]
        )
        assert _fired_at(engine) == {
            longer: MONDAY - timedelta(seconds=40),
            screens: MONDAY - timedelta(seconds=10),
            model.id: MONDAY,
        }
    finally:
        timer.stop()


def test_a_cue_missed_at_start_is_made_at_once_and_a_failed_one_fires_at_the_slot(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock, monkeypatch: Any
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    cued = _add(engine, model, "screens", "2021-05-03T06:00:00", "FREQ=DAILY", channel="sms")
    clock.set(MONDAY - timedelta(seconds=4))  # started within the cue
    timer = _cueing(engine, clock, {"sms": timedelta(seconds=10)})
    try:
        timer.start()
        assert _fired(engine) == [(cued, MONDAY)]
        assert _fired_at(engine)[cued] == MONDAY - timedelta(seconds=4)
    finally:
        timer.stop()
    # The next day's cue fails to write: the slot's own job fires it, once.
    tomorrow = MONDAY + timedelta(days=1)
    clock.set(tomorrow - timedelta(minutes=30))
    timer = _cueing(engine, clock, {"sms": timedelta(seconds=10)})
    try:
        timer.start()
        clock.set(tomorrow - timedelta(seconds=10))

        def broken(*_args: Any, **_kwargs: Any) -> int:
            raise RuntimeError("database away")

        with monkeypatch.context() as patched:
            patched.setattr("schedules.timer.fire_slot", broken)
            timer._cue_slot(tomorrow)
        assert (cued, tomorrow) not in _fired(engine)
        clock.set(tomorrow)
        timer._fire_slot(tomorrow)
        timer.reconcile()
        assert _fired(engine).count((cued, tomorrow)) == 1
        assert _fired_at(engine)[cued] == tomorrow  # the latest row per schedule
    finally:
        timer.stop()


def test_an_emergency_schedule_is_never_cued(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    model = _schedules(engine, settings, tmp_path, clock)
    urgent = _add(
        engine, model, "storm", "2021-05-03T06:00:00", "FREQ=DAILY", channel="sms",
        priority="emergency",
    )  # fmt: skip
    normal = _add(engine, model, "bulletin", "2021-05-03T06:00:00", "FREQ=DAILY", channel="sms")
    clock.set(MONDAY - timedelta(minutes=30))
    timer = _cueing(engine, clock, {"sms": timedelta(seconds=10)})
    try:
        timer.start()
        clock.set(MONDAY - timedelta(seconds=10))
        timer._cue_slot(MONDAY)
        assert _fired(engine) == [(normal, MONDAY)]
        clock.set(MONDAY)
        timer._fire_slot(MONDAY)
        assert sorted(_fired(engine)) == sorted(
            [(normal, MONDAY), (urgent, MONDAY), (model.id, MONDAY)]
        )
        assert _fired_at(engine)[urgent] == MONDAY
    finally:
        timer.stop()


def test_a_slot_fired_ahead_of_its_time_is_still_in_the_programme_devices_keep(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    from dispatcher.host import EngineHost

    model = _schedules(engine, settings, tmp_path, clock)
    clock.set(MONDAY - timedelta(minutes=30))
    timer = _cueing(engine, clock, {"web": timedelta(seconds=10)})
    host = EngineHost(engine, settings, clock)
    try:
        timer.start()
        clock.set(MONDAY - timedelta(seconds=10))
        timer._cue_slot(MONDAY)
        assert _fired(engine) == [(model.id, MONDAY)]
        ahead = host.upcoming("web", clock.now(), timedelta(hours=1))
        assert MONDAY in {s.at for s in ahead if s.schedule_id == model.id}
    finally:
        timer.stop()
