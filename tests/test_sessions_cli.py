"""`coso sessions` on the real clock: sessions added and listed with where each comes from,
bad input refused naming the field and value, a holiday that moves the day's items to the
next sessions with room, a removal refused when an item would have nowhere to go, and each
session's programme with the time left."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from coso.clock import date_text
from coso.config import Settings
from dispatcher.cli.app import app
from schedules.importer import import_plan_file
from schedules.session_store import programmes
from tests.plans import write_plan
from tests.session_plans import CUA_NAM, HOAN_KIEM, at, monday_ahead, wards_plan

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ZONE = "Asia/Ho_Chi_Minh"


@pytest.fixture
def coso(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    config = tmp_path / "coso.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(app, ["--config", str(config), "sessions", *args])
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 2, result.output
        return result.output

    return run


def _imported(engine: Engine, settings: Settings, tmp_path: Path, **kw: object) -> None:
    from datetime import UTC, datetime

    monday = monday_ahead()
    text = wards_plan(monday, **kw)  # type: ignore[arg-type]
    import_plan_file(engine, settings, write_plan(tmp_path, text), datetime.now(UTC))


def test_a_session_added_by_command_is_listed_with_where_it_comes_from(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _imported(engine, settings, tmp_path)
    said = coso(
        "add", "Trưa", "--unit", CUA_NAM, "--days", "T2-T6", "--start", "18:00", "--length", "30"
    )
    assert "Đã thêm buổi Trưa T2, T3, T4, T5, T6 18:00 (30 phút)" in said
    assert "Phường Cửa Nam" in said
    listed = coso("list", "--unit", CUA_NAM)
    assert "Trưa" in listed and "của riêng đơn vị" in listed
    # A ward with sessions of its own has those alone; its neighbour keeps its kind's.
    assert "Sáng" not in listed
    neighbour = coso("list", "--unit", HOAN_KIEM)
    assert "Sáng" in neighbour and "của mọi phường" in neighbour
    everything = coso("list")
    assert "đơn vị Phường Cửa Nam (00073)" in everything or "đơn vị 00073" in everything
    assert "mọi phường" in everything


def test_a_units_own_session_takes_over_and_its_items_move_into_it(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _imported(engine, settings, tmp_path)
    said = coso(
        "add", "Trưa", "--unit", CUA_NAM, "--days", "T2-T6", "--start", "18:00", "--length", "30"
    )
    # Cửa Nam's Sáng and Chiều are no more: its three items move on to its Monday Trưa
    # (25 of 30 minutes).
    assert said.count("chuyển sang buổi 'Trưa' 18:00") == 3
    monday = monday_ahead()
    found = programmes(engine, settings, [CUA_NAM], monday, monday, ZONE)
    assert [(p.session.name, [b.title for b in p.items], p.left) for p in found] == [
        ("Trưa", ["Tin A", "Tin B", "Tin C"], 5 * 60)
    ]


def test_bad_input_is_refused_naming_the_field_and_value(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    said = coso(
        "add",
        "Sáng",
        "--unit",
        CUA_NAM,
        "--days",
        "T2-T9",
        "--start",
        "25:00",
        "--length",
        "15m",
        ok=False,
    )
    assert "weekdays = 'T2-T9'" in said and "start = '25:00'" in said
    said = coso(
        "add",
        "Sáng",
        "--unit",
        "01",
        "--days",
        "T2",
        "--start",
        "05:00",
        "--length",
        "15",
        ok=False,
    )
    assert "unit = '01'" in said and "không phải xã, phường hay đặc khu" in said
    said = coso(
        "add",
        "Sáng",
        "--kind",
        "huyện",
        "--days",
        "T2",
        "--start",
        "05:00",
        "--length",
        "15",
        ok=False,
    )
    assert "kind = 'huyện'" in said
    said = coso("cancel", "31/02/2030", ok=False)
    assert "day = '31/02/2030'" in said
    said = coso(
        "add-day",
        date_text(monday_ahead()),
        "--session",
        "Tối",
        "--start",
        "19:00",
        "--length",
        "0",
        ok=False,
    )
    assert "length = '0'" in said
    assert "Buổi phát" in coso("list")  # nothing was stored


def test_a_holiday_moves_the_days_items_to_the_next_sessions_with_room(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    monday = monday_ahead()
    _imported(engine, settings, tmp_path, until=monday + timedelta(days=4))
    said = coso("cancel", date_text(monday), "--note", "Nghỉ lễ")
    assert "nghỉ mọi buổi phát ngày" in said and "Nghỉ lễ" in said
    assert "chuyển sang buổi" in said
    tuesday = monday + timedelta(days=1)
    found = programmes(engine, settings, [HOAN_KIEM], monday, tuesday, ZONE)
    assert [(p.session.at, [b.title for b in p.items]) for p in found] == [
        (at(tuesday, "06:00"), ["Tin A", "Tin B"]),
        (at(tuesday, "17:00"), ["Tin C"]),
    ]
    shown = coso("programme", "--unit", HOAN_KIEM, "--from", date_text(monday), "--days", "2")
    assert date_text(monday) not in shown.split("Buổi phát", 1)[1].replace(
        f"{date_text(monday)}–", ""
    )
    assert "1. Tin A (10 phút)" in shown and "2. Tin B (5 phút)" in shown
    assert "5 phút" in shown  # Chiều's time left


def test_removing_a_session_whose_item_has_nowhere_to_go_is_refused_naming_it(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    monday = monday_ahead()
    _imported(engine, settings, tmp_path)  # the items' range: that Monday alone
    said = coso("remove", "Chiều", "--kind", "phường", ok=False)
    assert "name = 'Chiều'" in said
    assert "'Tin C' (10 phút) ở buổi 'Chiều' 17:00" in said and "không chuyển được" in said
    # Nothing changed: the session is there, C still in it.
    assert "Chiều" in coso("list", "--unit", HOAN_KIEM)
    found = programmes(engine, settings, [HOAN_KIEM], monday, monday, ZONE)
    assert [[b.title for b in p.items] for p in found] == [["Tin A", "Tin B"], ["Tin C"]]


def test_an_added_day_session_shows_in_the_programme_and_can_be_taken_back(
    coso, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    saturday = monday_ahead() + timedelta(days=5)
    _imported(engine, settings, tmp_path)
    said = coso(
        "add-day",
        date_text(saturday),
        "--session",
        "Đặc biệt",
        "--start",
        "08:00",
        "--length",
        "20",
        "--kind",
        "phường",
        "--note",
        "Trước đại hội",
    )
    assert "thêm buổi 'Đặc biệt' 08:00 (20 phút)" in said
    shown = coso("programme", "--unit", CUA_NAM, "--from", date_text(saturday), "--days", "1")
    assert "Đặc biệt" in shown and "20 phút" in shown
    listed = coso("list")
    line = next(x for x in listed.splitlines() if "Đặc biệt" in x)
    exception_id = line.split("│")[1].strip()
    coso("remove-day", exception_id)
    assert "không có buổi phát nào" in coso(
        "programme", "--unit", CUA_NAM, "--from", date_text(saturday), "--days", "1"
    )
