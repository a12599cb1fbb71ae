"""Content goes out only while approved; disabled schedules do not fire, re-enabled ones
do not back-fill."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from schedules.editing import set_enabled
from schedules.importer import import_plan_file
from schedules.models import Occurrence
from tests.helpers import SLOT, delivery_states
from tests.plans import WEEKLY_PLAN, write_plan

runner = CliRunner()
DRAFT_PLAN = WEEKLY_PLAN.replace('state = "approved"', 'state = "draft"').replace(
    'misfire_grace = "30m"', 'misfire_grace = "30m"\nenabled = false'
)


def test_draft_content_is_approved_then_sent_then_retired(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    import_plan_file(engine, settings, write_plan(tmp_path, DRAFT_PLAN), clock.now())
    refused = runner.invoke(app, ["schedule", "enable", "1"])
    assert refused.exit_code == 2
    assert "schedule = 1: its content is draft; approve it first" in refused.output
    approved = runner.invoke(app, ["content", "approve", "95/KH-UBND", "cchc", "--by", "Phó GĐ"])
    assert approved.exit_code == 0, approved.output
    listed = runner.invoke(app, ["content", "list", "95/KH-UBND"], env={"COLUMNS": "200"})
    assert "đã duyệt" in listed.output and "Phó GĐ" in listed.output
    set_enabled(engine, 1, True, clock.now())  # as `coso schedule enable 1`, on the test clock

    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(SLOT)
    dispatcher.tick()
    assert delivery_states(engine) == {"delivered": 3}

    assert runner.invoke(app, ["content", "retire", "95/KH-UBND", "cchc"]).exit_code == 0
    again = runner.invoke(app, ["content", "approve", "95/KH-UBND", "cchc", "--by", "x"])
    assert again.exit_code == 2
    assert "content = 'cchc': is retired; cannot become approved" in again.output
    clock.set(SLOT + timedelta(days=3))
    dispatcher.tick()
    assert delivery_states(engine) == {"delivered": 3, "failed": 3}
    with engine.connect() as conn:
        errors = set(conn.scalars(select(Delivery.last_error).where(Delivery.state == "failed")))
    assert errors == {"content 'cchc' is retired, not approved"}


def test_disabled_schedule_skips_slots_and_reenabling_does_not_backfill(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    dispatcher = Dispatcher(engine, settings, clock)
    set_enabled(engine, 1, False, clock.now())
    clock.set(SLOT)
    dispatcher.tick()
    clock.set(SLOT + timedelta(days=3, minutes=10))  # Thursday's slot, while disabled
    dispatcher.tick()
    set_enabled(engine, 1, True, clock.now())
    clock.set(SLOT + timedelta(days=7))
    dispatcher.tick()
    with engine.connect() as conn:
        slots = conn.scalars(select(Occurrence.scheduled_for)).all()
    assert slots == [SLOT + timedelta(days=7)]
    assert delivery_states(engine) == {"delivered": 3}
