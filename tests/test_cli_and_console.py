"""The CLI's read commands and the console pages, on a plan that has run for a week."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from channels.web.channel import BulletinPost
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.console import make_user, signed_in
from tests.helpers import SLOT
from tests.plans import write_plan

runner = CliRunner()


@pytest.fixture
def ran_a_week(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Engine:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COLUMNS", "200")
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(SLOT)  # Mon 03/05 06:00: sent on time
    dispatcher.tick()
    clock.set(SLOT + timedelta(days=3, minutes=45))  # Thu 06:00 fell while down: missed
    dispatcher.tick()
    return engine


def test_schedule_preview_lists_slots_and_sends_nothing(ran_a_week: Engine) -> None:
    with ran_a_week.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(BulletinPost))
    result = runner.invoke(
        app, ["schedule", "preview", "95/KH-UBND", "--from", "10/05/2021", "--days", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "Thứ hai 10/05/2021 06:00" in result.output
    assert "Thứ năm 13/05/2021 06:00" in result.output
    assert "2 occurrences, 6 deliveries" in result.output
    with ran_a_week.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(BulletinPost)) == before
    bad = runner.invoke(app, ["schedule", "preview", "95/KH-UBND", "--from", "2021-13-01"])
    assert bad.exit_code == 2
    assert "from = '2021-13-01': not a date" in bad.output


def test_log_filters_by_state_and_unit(ran_a_week: Engine) -> None:
    missed = runner.invoke(app, ["log", "95/KH-UBND", "--state", "missed"])
    assert missed.exit_code == 0, missed.output
    assert missed.output.count("bị lỡ") == 3 * 2 + 0  # event and state columns, in words
    assert "đã đăng" not in missed.output
    one_unit = runner.invoke(
        app,
        ["log", "95/KH-UBND", "--unit", "06040", "--since", "03/05/2021", "--until", "03/05/2021"],
    )
    assert one_unit.exit_code == 0, one_unit.output
    assert one_unit.output.count("bulletin:06040") == 2  # queued and published on Monday
    assert "bulletin:06046" not in one_unit.output
    # The province finds its communes' entries; a limit says it cut the list.
    province = runner.invoke(app, ["log", "95/KH-UBND", "--unit", "20", "--limit", "0"])
    assert province.exit_code == 0, province.output
    for code in ("06040", "06046", "06112"):
        assert f"bulletin:{code}" in province.output
    cut = runner.invoke(app, ["log", "95/KH-UBND", "--unit", "20", "--limit", "2"])
    assert "the newest 2 entries; --limit 0 for all" in cut.output
    unknown = runner.invoke(app, ["log", "95/KH-UBND", "--unit", "99"])
    assert unknown.exit_code == 2 and "unit = '99'" in unknown.output
    bad = runner.invoke(app, ["log", "95/KH-UBND", "--since", "31/02/2021"])
    assert bad.exit_code == 2
    assert "since = '31/02/2021'" in bad.output


def test_deliveries_and_plan_show(ran_a_week: Engine) -> None:
    result = runner.invoke(app, ["deliveries", "95/KH-UBND", "--state", "delivered"])
    assert result.exit_code == 0, result.output
    assert result.output.count("bulletin/") == 3  # provider ids of the three posts
    shown = runner.invoke(app, ["plan", "show", "95/KH-UBND"])
    assert shown.exit_code == 0
    assert "│ web     │ đã nhận │ 3" in shown.output
    assert "│ web     │ bị lỡ   │ 3" in shown.output
    unknown = runner.invoke(app, ["plan", "show", "12/KH-XYZ"])
    assert unknown.exit_code == 2
    assert "plan = '12/KH-XYZ': no plan with this number or id" in unknown.output


def test_console_pages_show_plans_counts_and_activity(
    ran_a_week: Engine, settings: Settings
) -> None:
    make_user(ran_a_week, "xem-tinh", ["viewer"], ["20"])
    with ServerThread(create_app(ran_a_week, settings)) as server:
        client = signed_in(server.url, "xem-tinh")
        index = client.get("/")
        assert "95/KH-UBND" in index.text
        plan = client.get("/plans/95/KH-UBND")
        assert plan.status_code == 200, plan.text
        assert '<td class="state-missed">bị lỡ</td><td>3</td>' in plan.text  # states in words
        assert "<td>Trang tin điện tử</td>" in plan.text  # channels by title
        assert "đã đăng</td>" in plan.text and ">published<" not in plan.text
        assert ">Xã Thất Khê</td>" in plan.text  # units by name, not code
        assert "late by" not in plan.text
        assert client.get("/plans/nope").status_code == 404
