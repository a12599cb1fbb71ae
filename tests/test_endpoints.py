"""Endpoints imported in bulk from CSV: all or nothing, units checked, duplicates named."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from channels.endpoints import Endpoint
from dispatcher.cli.app import app

runner = CliRunner()
GOOD = """channel,address,name,unit
web,bulletin:06040,Trang tin xã Thất Khê,06040
web,bulletin:06046,Trang tin xã Tràng Định,06046
web,wordpress:langson,Cổng TTĐT tỉnh,20
"""


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    return lambda *args: runner.invoke(app, list(args))


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Endpoint)) or 0


def test_endpoints_import_adds_new_ones_and_keeps_known_ones(
    cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "endpoints.csv"
    csv.write_text(GOOD, encoding="utf-8")
    first = cli("endpoints", "import", str(csv))
    assert first.exit_code == 0, first.output
    assert "3 endpoints added, 0 already known" in first.output
    again = cli("endpoints", "import", str(csv))
    assert "0 endpoints added, 3 already known" in again.output
    listed = cli("endpoints", "list", "--unit", "20")
    assert listed.output.count("bulletin:") == 2 and "wordpress:langson" in listed.output
    assert _count(engine) == 3


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("fax,123,,06040", "endpoints.csv:3: channel = 'fax': no such channel"),
        ("web,,,06040", "endpoints.csv:3: address = '': is empty"),
        (
            "web,bulletin:06040,again,06040",
            "endpoints.csv:3: address = 'bulletin:06040': repeats line 2",
        ),
        (
            "web,bulletin:x,,77777",
            "endpoints.csv:3: unit = '77777': is not a known administrative unit",
        ),
    ],
)
def test_a_bad_row_names_its_line_and_imports_nothing(
    cli, engine: Engine, tmp_path: Path, bad_line: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "endpoints.csv"
    csv.write_text("channel,address,name,unit\nweb,bulletin:06040,,06040\n" + bad_line + "\n")
    result = cli("endpoints", "import", str(csv))
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")
    assert _count(engine) == 0
