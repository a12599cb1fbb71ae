"""`coso plan import --update`: a plan file for a plan that exists shows what it would change
and applies exactly that; approved content it edits keeps going out until approved."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from channels.web.channel import BulletinPost
from content.approval import find_content
from content.models import ContentVersion
from content.versions import approve, edit_content
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputError, InputErrors
from dispatcher.cli.app import app
from dispatcher.queries import find_plan
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.models import Occurrence, PlanTarget, Schedule
from schedules.plan_import.update import apply_update, check_update
from tests.helpers import SLOT, delivery_states
from tests.plans import WEEKLY_PLAN, write_plan

runner = CliRunner()
NEW_TARGET = """
[[targets]]
channel = "web"
count = 1
per = "day"
units = ["06040"]
"""
# 06:00 → 07:00, a new sentence in the body, one more target.
CHANGED_PLAN = (
    WEEKLY_PLAN.replace("start = 2021-05-03T06:00:00", "start = 2021-05-03T07:00:00").replace(
        "Bản tin lúc", "Bản tin mới lúc"
    )
    + NEW_TARGET
)
HOUR = timedelta(hours=1)


def _imported(engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path) -> int:
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), clock.now())
    return find_plan(engine, "95/KH-UBND").id  # type: ignore[return-value]


def _bodies(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(BulletinPost.body_html).order_by(BulletinPost.id)))


def _snapshot(engine: Engine) -> tuple[object, ...]:
    """What an update may change: schedules, targets, content versions."""
    with engine.connect() as conn:
        return (
            conn.execute(select(Schedule.__table__).order_by(Schedule.id)).all(),
            conn.execute(select(PlanTarget.__table__).order_by(PlanTarget.id)).all(),
            conn.execute(select(ContentVersion.__table__).order_by(ContentVersion.id)).all(),
        )


def test_update_lists_exactly_what_changed_and_applies_it(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    plan_id = _imported(engine, settings, clock, tmp_path)
    found = check_update(
        engine, settings, write_plan(tmp_path, CHANGED_PLAN, "b.toml"), clock.now()
    )

    assert [
        (c.section, c.action, c.subject, [f.field for f in c.fields]) for c in found.changes
    ] == [
        ("targets", "added", "web 1 lần/ngày, đơn vị 06040", []),
        ("content", "changed", "cchc", ["body"]),
        ("schedules", "changed", "CCHC Mon/Thu", ["start"]),
    ]
    start = found.changes[2].fields[0]
    assert (start.label, start.before, start.after) == (
        "bắt đầu",
        "03/05/2021 06:00",
        "03/05/2021 07:00",
    )
    assert "phiên bản 1 đã duyệt vẫn được gửi" in found.changes[1].description

    apply_update(engine, found, "Biên tập viên", clock.now())
    with engine.connect() as conn:
        assert conn.scalar(select(Schedule.start_local)) == "2021-05-03T07:00:00"
        assert conn.scalar(select(func.count()).select_from(PlanTarget)) == 2
    draft = find_content(engine, plan_id, "cchc")
    assert draft.version == 1 and "Bản tin lúc" in draft.body  # the approved one goes out

    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(SLOT)  # 06:00: the schedule no longer fires then
    dispatcher.tick()
    assert delivery_states(engine) == {}
    clock.set(SLOT + HOUR)
    dispatcher.tick()
    assert delivery_states(engine) == {"delivered": 3}
    assert all("Bản tin lúc" in b and "Bản tin mới" not in b for b in _bodies(engine))

    approve(engine, plan_id, "cchc", 2, "Phó Giám đốc", clock.now())
    clock.set(SLOT + timedelta(days=3) + HOUR)  # Thursday 07:00
    dispatcher.tick()
    assert delivery_states(engine) == {"delivered": 6}
    assert sum("Bản tin mới lúc" in b for b in _bodies(engine)) == 3

    again = check_update(engine, settings, CHANGED_PLAN, clock.now())
    assert again.changes == ()


def test_an_unchanged_file_reports_no_changes(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    _imported(engine, settings, clock, tmp_path)
    before = _snapshot(engine)
    assert check_update(engine, settings, WEEKLY_PLAN.encode("utf-8"), clock.now()).changes == ()
    shown = runner.invoke(app, ["plan", "import", "--update", str(tmp_path / "plan.toml")])
    assert shown.exit_code == 0, shown.output
    assert "95/KH-UBND: không có thay đổi" in shown.output
    assert _snapshot(engine) == before


def test_a_bad_file_is_refused_naming_the_field_and_nothing_changes(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    _imported(engine, settings, clock, tmp_path)
    before = _snapshot(engine)
    bad = CHANGED_PLAN.replace('rrule = "FREQ=WEEKLY;BYDAY=MO,TH"', 'rrule = "FREQ=FORTNIGHTLY"')
    with pytest.raises(InputErrors) as refused:
        check_update(engine, settings, write_plan(tmp_path, bad, "bad.toml"), clock.now())
    assert [e.field for e in refused.value.errors] == ["schedules[0].rrule"]
    assert refused.value.errors[0].value == "FREQ=FORTNIGHTLY"
    assert _snapshot(engine) == before


def test_a_plan_changed_after_its_changes_were_shown_is_not_updated(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    plan_id = _imported(engine, settings, clock, tmp_path)
    found = check_update(engine, settings, CHANGED_PLAN, clock.now())
    edit_content(engine, plan_id, "cchc", None, "Sửa ở nơi khác.", "Bình", clock.now())
    before = _snapshot(engine)
    with pytest.raises(InputError, match="vừa được thay đổi từ lúc xem"):
        apply_update(engine, found, "An", clock.now())
    assert _snapshot(engine) == before


def test_a_schedule_left_out_of_the_file_is_disabled_and_its_history_kept(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    _imported(engine, settings, clock, tmp_path)
    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(SLOT)
    dispatcher.tick()
    without = WEEKLY_PLAN.split("[[schedules]]")[0]
    found = check_update(engine, settings, without, clock.now())
    assert [(c.section, c.action, c.action_name) for c in found.changes] == [
        ("schedules", "removed", "tắt")
    ]
    apply_update(engine, found, "An", clock.now())
    clock.set(SLOT + timedelta(days=3))
    dispatcher.tick()
    with engine.connect() as conn:
        assert conn.execute(select(Schedule.id, Schedule.enabled)).all() == [(1, False)]
        assert conn.scalar(select(func.count()).select_from(Occurrence)) == 1
    assert delivery_states(engine) == {"delivered": 3}


def test_cli_refuses_an_existing_number_without_update_and_asks_before_applying(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    _imported(engine, settings, clock, tmp_path)
    before = _snapshot(engine)
    changed = str(write_plan(tmp_path, CHANGED_PLAN, "b.toml"))
    wide = {"COLUMNS": "250"}

    plain = runner.invoke(app, ["plan", "import", changed], env=wide)
    assert plain.exit_code == 2
    assert "a plan with this number already exists" in plain.output
    assert "--update" in plain.output
    declined = runner.invoke(app, ["plan", "import", "--update", changed], input="n\n", env=wide)
    assert declined.exit_code == 1
    assert "Sửa lịch 'CCHC Mon/Thu': bắt đầu 03/05/2021 06:00 → 03/05/2021 07:00" in (
        declined.output
    )
    assert "không thay đổi gì" in declined.output
    assert _snapshot(engine) == before

    applied = runner.invoke(app, ["plan", "import", "--update", changed, "--yes"], env=wide)
    assert applied.exit_code == 0, applied.output
    assert "đã cập nhật kế hoạch 95/KH-UBND (id 1): 3 thay đổi" in applied.output
    assert "coso content approve 95/KH-UBND cchc --version 2" in applied.output
    with engine.connect() as conn:
        assert conn.scalar(select(Schedule.start_local)) == "2021-05-03T07:00:00"
