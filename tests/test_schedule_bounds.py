"""Schedule and timer bounds: a rule that cannot be expanded, a time out of range or a
schedule firing far more often or further ahead than its channel allows is refused at import
naming the schedule, the value and the limit; one already in the database is skipped or
capped, and never keeps the other schedules from firing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from coso.clock import ManualClock
from coso.config import Settings, load_settings
from coso.errors import InputError, InputErrors
from dispatcher.cli.app import app
from schedules.firing import MOST_PER_PASS, fire_due, next_fire_times
from schedules.importer import import_plan_file
from schedules.models import Occurrence, Schedule
from schedules.preview import MOST_PER_SCHEDULE, preview
from tests.plans import SMS_REMINDER_PLAN, WEEKLY_PLAN, write_plan
from tests.test_bad_input import snapshot

runner = CliRunner()
S, OCC = Schedule.__table__, Occurrence.__table__

WEEKLY_RULE = 'rrule = "FREQ=WEEKLY;BYDAY=MO,TH"'


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.setenv("COSO_CHANNELS__SMS__ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("COLUMNS", "300")

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return invoke


def _plan_in_year(year: int) -> str:
    """The weekly plan as a one-off, with the plan's period stretched over `year`."""
    return (
        WEEKLY_PLAN.replace(WEEKLY_RULE + "\n", "")
        .replace("until = 2021-12-31\n", "")
        .replace("period_start = 2021-04-21", f"period_start = {min(year, 2021):04d}-01-01")
        .replace("period_end = 2021-12-31", f"period_end = {max(year, 2021):04d}-12-31")
        .replace("start = 2021-05-03T06:00:00", f"start = {year:04d}-06-01T06:00:00")
    )


REFUSED = {
    "INTERVAL=0 (dateutil steps for ever)": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=SECONDLY;INTERVAL=0"'),
        ["schedules[0].rrule = 'FREQ=SECONDLY;INTERVAL=0'", "INTERVAL=0", "CCHC Mon/Thu"],
    ),
    "a rule with no firing (30 February)": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"'),
        ["schedules[0].rrule = 'FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30'", "không bao giờ phát"],
    ),
    "a one-off in the year 1": (
        _plan_in_year(1),
        ["schedules[0].start = '0001-06-01T06:00:00'", "ngoài khoảng cho phép", "CCHC Mon/Thu"],
    ),
    "a one-off in the year 9999": (
        _plan_in_year(9999),
        ["schedules[0].start = '9999-06-01T06:00:00'", "ngoài khoảng cho phép"],
    ),
    "web posts every second": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=SECONDLY"'),
        ["schedules[0].rrule = 'FREQ=SECONDLY'", "min_interval = 1h", "kênh web", "1s"],
    ),
    "web posts every minute": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=MINUTELY"'),
        ["schedules[0].rrule = 'FREQ=MINUTELY'", "min_interval = 1h", "'CCHC Mon/Thu'"],
    ),
    "seven web posts a day": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=DAILY;BYHOUR=6,8,10,12,14,16,18"'),
        ["max_per_day = 6", "kênh web", "03/05/2021"],
    ),
    "COUNT=100000000": (
        WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=SECONDLY;COUNT=100000000"'),
        ["schedules[0].rrule = 'FREQ=SECONDLY;COUNT=100000000'", "COUNT=100000000"],
    ),
    "a weekly rule running to the year 2099": (
        _plan_in_year(2099)
        .replace("start = 2099-06-01T06:00:00", "start = 2021-06-01T06:00:00")
        .replace('validity = "12h"', f'{WEEKLY_RULE}\nuntil = 2099-12-31\nvalidity = "12h"'),
        ["schedules[0].until = '2099-12-31", "max_reach = 731d", "kênh web", "31/12/2099"],
    ),
    "SMS every two hours, which a web post may do": (
        SMS_REMINDER_PLAN.replace(
            "start = 2021-05-03T07:00:00",
            'start = 2021-05-03T07:00:00\nrrule = "FREQ=DAILY;BYHOUR=7,9"\nuntil = 2021-05-31',
        ),
        ["schedules[0].rrule = 'FREQ=DAILY;BYHOUR=7,9'", "min_interval = 4h", "kênh sms", "2h"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_schedule_beyond_bounds_is_refused_at_import_naming_schedule_value_and_limit(
    case: str, cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text, expected = REFUSED[case]
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())
    for part in expected:
        assert part in flat, (part, result.output)
    assert snapshot(engine) == before  # nothing written


def test_bounds_come_from_the_channel_and_config_overrides_them_key_by_key(
    settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    minutely = WEEKLY_PLAN.replace(WEEKLY_RULE, 'rrule = "FREQ=MINUTELY"')
    wider = settings.model_copy(update={"channels": {"web": {"schedules": {"min_interval": "1m"}}}})
    with pytest.raises(InputErrors) as refused:  # still at most 6 a day, the web's default
        import_plan_file(_engine(wider), wider, write_plan(tmp_path, minutely), clock.now())
    assert "max_per_day = 6" in str(refused.value)
    widest = settings.model_copy(
        update={"channels": {"web": {"schedules": {"min_interval": "1m", "max_per_day": 1440}}}}
    )
    plan = import_plan_file(_engine(widest), widest, write_plan(tmp_path, minutely), clock.now())
    assert plan.id is not None


def _engine(settings: Settings) -> Engine:
    from coso.db import make_engine

    return make_engine(settings.database.url)


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("horizon", "99999999999d", "longer than 3660d"),
        ("horizon", "0s", "shorter than 1s"),
        ("horizon", "30d", "longer than 7d"),
        ("reconcile_every", "0s", "shorter than 1s"),
        ("default_misfire_grace", "0s", "longer than 0s"),
    ],
)
def test_timer_durations_out_of_bounds_are_refused_naming_key_and_value(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    config = tmp_path / "coso.toml"
    config.write_text(f'[timer]\n{key} = "{value}"\n', encoding="utf-8")
    with pytest.raises(InputError) as refused:
        load_settings(config)
    assert f"timer.{key} = {value!r}" in str(refused.value)
    assert why in str(refused.value)


# --- schedules already in the database, stored before the bounds were checked ----------


def _add_schedule(engine: Engine, model: Any, **timing: Any) -> int:
    row = {k: v for k, v in model._mapping.items() if k != "id"}
    row.update(until_local=None, exdates_local=[], **timing)
    with engine.begin() as conn:
        return int(conn.execute(S.insert().returning(S.c.id), [row]).scalar_one())


STORED_BAD = {
    "year 1": {"start_local": "0001-01-01T00:00:00", "rrule": None},
    "year 9999": {"start_local": "9999-12-31T23:59:00", "rrule": None},
    "INTERVAL=0": {"start_local": "2021-05-01T06:00:00", "rrule": "FREQ=SECONDLY;INTERVAL=0"},
    "30 February": {
        "start_local": "2021-05-01T06:00:00",
        "rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
    },
    "huge COUNT": {"start_local": "2020-01-01T00:00:00", "rrule": "FREQ=SECONDLY;COUNT=100000000"},
}


def _store(engine: Engine, settings: Settings, tmp_path: Path, now: datetime, **bad: Any) -> int:
    """The weekly plan, a schedule stored as given (no import accepts it today), and a good
    one-off at 19:30 local (12:30 UTC) on 02/05/2021; the good one's id."""
    import_plan_file(engine, settings, write_plan(tmp_path), now)
    with engine.connect() as conn:
        model = conn.execute(select(S)).first()
    for name, timing in bad.items():
        _add_schedule(engine, model, name=name, **timing)
    return _add_schedule(engine, model, name="good", start_local="2021-05-02T19:30:00", rrule=None)


def _within(seconds: float, work: Any) -> Any:
    """Run `work` in a thread; fail (not hang) when it has not returned in time."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["value"] = work()
        except Exception as exc:
            done["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if "error" in done:
        raise done["error"]
    assert "value" in done, f"still expanding after {seconds} s"
    return done["value"]


@pytest.mark.parametrize("bad", sorted(STORED_BAD))
def test_a_stored_schedule_that_cannot_be_expanded_is_skipped_and_the_others_fire(
    bad: str,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"{bad} {uuid.uuid4().hex[:8]}"  # the timer says it once an hour per schedule
    good = _store(engine, settings, tmp_path, clock.now(), **{name: STORED_BAD[bad]})
    now = clock.now() + timedelta(hours=1)
    ahead = _within(120, lambda: next_fire_times(engine, clock.now(), now))
    assert [(i, t.astimezone(UTC)) for i, t in ahead] == [
        (good, datetime(2021, 5, 2, 12, 30, tzinfo=UTC))
    ]
    assert _within(120, lambda: fire_due(engine, now)) == 1
    with engine.connect() as conn:
        fired = conn.execute(select(OCC.c.schedule_id, OCC.c.scheduled_for)).all()
    assert [(i, t.replace(tzinfo=None)) for i, t in fired] == [(good, datetime(2021, 5, 2, 12, 30))]
    assert f"({name}): its times cannot be expanded, so it does not fire" in caplog.text


def test_a_schedule_firing_every_minute_is_expanded_a_pass_at_a_time(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    with engine.connect() as conn:
        model = conn.execute(select(S)).first()
    day_ago = clock.now() - timedelta(days=1)
    sid = _add_schedule(
        engine,
        model,
        name="minutely",
        start_local="2021-05-01T00:00:00",
        rrule="FREQ=MINUTELY",
        fired_through=day_ago,
    )

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(OCC.c.schedule_id == sid)))

    assert fire_due(engine, clock.now()) == MOST_PER_PASS  # not the whole day at once
    for _ in range(5):
        fire_due(engine, clock.now())
    assert count() == 24 * 60  # all of them in the end, each once


def test_preview_of_a_schedule_firing_every_second_is_capped(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    secondly = {"start_local": "2021-05-01T00:00:00", "rrule": "FREQ=SECONDLY"}
    good = _store(engine, settings, tmp_path, clock.now(), secondly=secondly)
    with engine.connect() as conn:
        plan_id = conn.scalar(select(S.c.plan_id).where(S.c.id == good))
    rows = _within(120, lambda: preview(engine, plan_id, clock.now(), 7))
    assert sum(r.schedule == "secondly" for r in rows) == MOST_PER_SCHEDULE
    assert sum(r.schedule == "good" for r in rows) == 1
    assert sum(r.schedule == "CCHC Mon/Thu" for r in rows) == 2


def test_a_stored_rule_that_never_ends_stepping_is_not_enabled_again(
    engine: Engine, settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    from schedules.editing import set_enabled

    _store(engine, settings, tmp_path, clock.now(), **{"INTERVAL=0": STORED_BAD["INTERVAL=0"]})
    with engine.connect() as conn:
        sid = conn.scalar(select(S.c.id).where(S.c.name == "INTERVAL=0"))
    set_enabled(engine, sid, False, clock.now())
    with pytest.raises(InputError, match=r"schedule = \d+: lịch 'INTERVAL=0' .*INTERVAL=0"):
        set_enabled(engine, sid, True, clock.now())
    with engine.connect() as conn:
        assert conn.scalar(select(S.c.enabled).where(S.c.id == sid)) is False


@pytest.mark.parametrize("day", ["01/01/0001", "31/12/9999", "0001-01-01"])
def test_a_preview_from_a_day_out_of_range_is_refused_naming_it(
    cli: Any, day: str, tmp_path: Path
) -> None:
    assert cli("plan", "import", str(write_plan(tmp_path, WEEKLY_PLAN))).exit_code == 0
    result = cli("schedule", "preview", "95/KH-UBND", "--from", day)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "from" in result.output
    assert day in result.output and "2000" in result.output
