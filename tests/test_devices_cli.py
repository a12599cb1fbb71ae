"""`coso devices`: every channel's devices in one list, as the console's device page has
them — a board's state beside the loudspeaker players'."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels.boards import devices as board_devices
from channels.endpoints import Endpoint, add_endpoints
from coso.db import write
from dispatcher.cli.app import app

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 09:00 in Asia/Ho_Chi_Minh


@pytest.fixture
def cli(engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.setenv("COSO_MEDIA__DIR", str(tmp_path / "media"))
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    add_endpoints(
        engine,
        [
            {"channel": "boards", "address": "screen:cho-dong-kinh", "unit_code": "06040"},
            {"channel": "boards", "address": "screen:ubnd-xa", "unit_code": "06040"},
            {"channel": "loudspeaker", "address": "loa-1", "unit_code": "06040"},
            {"channel": "sms", "address": "+84912345678", "unit_code": "06043"},
        ],
        NOW,
    )
    E = Endpoint.__table__
    with engine.connect() as conn:
        board = conn.scalar(select(E.c.id).where(E.c.address == "screen:cho-dong-kinh"))
    with write(engine) as conn:
        board_devices.set_status(
            conn, [board], online=True, last_seen=NOW, showing="Lịch tiếp công dân"
        )
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_devices_lists_every_channels_devices_with_what_each_shows(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("devices")
    assert done.exit_code == 0, done.output
    lines = {line.split("│")[2].strip(): line for line in done.output.splitlines() if "│" in line}
    board = lines["screen:cho-dong-kinh"]
    assert "đang kết nối" in board and "Lịch tiếp công dân" in board
    assert "07/12/2026 09:00" in board  # last seen, in the zone's time
    assert "chưa từng kết nối" in lines["screen:ubnd-xa"]  # never paired, never seen
    assert "loa-1" in lines and "+84912345678" in lines


def test_devices_of_one_channel_or_one_unit(cli) -> None:  # type: ignore[no-untyped-def]
    boards = cli("devices", "--channel", "boards")
    assert boards.exit_code == 0, boards.output
    assert "screen:ubnd-xa" in boards.output and "loa-1" not in boards.output
    commune = cli("devices", "--unit", "06043")
    assert "+84912345678" in commune.output and "screen:ubnd-xa" not in commune.output


def test_an_unknown_channel_is_refused_naming_it(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("devices", "--channel", "fax")
    assert done.exit_code != 0
    assert "--channel" in done.output and "fax" in done.output
