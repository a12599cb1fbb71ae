"""A stored plan written back as a plan file reads back as no change at all, so the
console can add to it and `coso plan import --update` sees only what was added."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from coso.config import Settings
from schedules.importer import import_plan_file
from schedules.plan_export import plan_document, plan_text, stored_plan
from schedules.plan_import.update import check_update
from tests.plans import SMS_REMINDER_PLAN, WEEKLY_PLAN, write_plan
from tests.sms import sms_settings
from tests.test_station import STATION_PLAN

NOW = datetime(2021, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "number"),
    [(WEEKLY_PLAN, "95/KH-UBND"), (SMS_REMINDER_PLAN, "12/KH-UBND"), (STATION_PLAN, "21/KH-UBND")],
)
def test_an_exported_plan_reads_back_as_no_change(
    engine: Engine, settings: Settings, tmp_path: Path, text: str, number: str
) -> None:
    settings = sms_settings(settings, "http://127.0.0.1:9")
    import_plan_file(engine, settings, write_plan(tmp_path, text), NOW)
    stored = stored_plan(engine, number)
    assert stored is not None
    exported = plan_text(plan_document(stored))
    update = check_update(engine, settings, exported, NOW)
    assert update.changes == ()


def test_an_added_schedule_is_the_only_change(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), NOW)
    document = plan_document(stored_plan(engine, "95/KH-UBND"))  # type: ignore[arg-type]
    document["schedules"].append(
        {
            "name": "Thêm sáng thứ bảy",
            "content": "cchc",
            "channel": "web",
            "targets": {"units": ["06040"]},
            "start": datetime(2021, 5, 8, 6, 0),
            "rrule": "FREQ=WEEKLY;BYDAY=SA",
            "until": datetime(2021, 12, 31, 23, 59, 59),
        }
    )
    update = check_update(engine, settings, plan_text(document), NOW)
    assert [(c.section, c.action, c.subject) for c in update.changes] == [
        ("schedules", "added", "Thêm sáng thứ bảy")
    ]


def test_coso_plan_export_prints_a_file_that_updates_nothing(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), NOW)
    exported = CliRunner().invoke(app, ["plan", "export", "95/KH-UBND"])
    assert exported.exit_code == 0, exported.output
    assert 'number = "95/KH-UBND"' in exported.output
    again = tmp_path / "again.toml"
    again.write_text(exported.output, encoding="utf-8")
    shown = CliRunner().invoke(app, ["plan", "import", "--update", str(again), "--yes"])
    assert shown.exit_code == 0, shown.output
    assert "không có thay đổi" in shown.output
