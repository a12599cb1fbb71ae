"""The report as an office sends it — XLSX, DOCX, a standalone HTML page — opened again and
read against the report's own figures; and the console's report page, cut to the units of
whoever asks for it, with its downloads."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from channels.station.confirmations import confirm
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.host import EngineHost
from dispatcher.models import Delivery
from dispatcher.queries import find_plan
from dispatcher.report.build import Report, build_report
from dispatcher.report.csv_table import COLUMNS
from dispatcher.report.exports import MOTTO, NATION, render
from dispatcher.report.figures import LABELS
from dispatcher.report.periods import parse_period
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.console import make_user, signed_in
from tests.helpers import SLOT
from tests.plans import write_plan
from tests.test_station import STATION_PLAN, fire

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# The station plan with a target: one broadcast a day in each of its two communes.
PLAN = STATION_PLAN.replace(
    "[[content]]",
    '[[targets]]\nchannel = "station"\ncount = 1\nper = "day"\nunits = ["06040", "06046"]\n\n'
    "[[content]]",
    1,
)
BEFORE = datetime(2021, 5, 2, 12, 0, tzinfo=UTC)
# 20:30 UTC on 04/05 is 03:30 on 05/05 in Hồ Chí Minh: the date line is the plan's zone's.
WRITTEN = datetime(2021, 5, 4, 20, 30, tzinfo=UTC)
DATE_LINE = "Lạng Sơn, ngày 05 tháng 05 năm 2021"


@pytest.fixture
def two_days(engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Two mornings of the plan: commune 06040's station confirmed both days, 06046's
    never; the web post of 06040 went out on the first."""
    clock = ManualClock(BEFORE)
    import_plan_file(engine, settings, write_plan(tmp_path, PLAN), clock.now())

    class Rig:
        pass

    rig = Rig()
    rig.clock, rig.engine, rig.settings = clock, engine, settings  # type: ignore[attr-defined]
    host = EngineHost(engine, settings, clock)
    D = Delivery.__table__
    for day in range(2):
        slot = SLOT + timedelta(days=day)
        fire(rig, slot + timedelta(seconds=1))
        with engine.connect() as conn:
            mine = conn.scalar(
                select(D.c.id).where(
                    D.c.channel == "station", D.c.unit_code == "06040", D.c.state == "sent"
                )
            )
        clock.set(slot + timedelta(minutes=10))
        confirm(host, mine, "op-a", slot + timedelta(minutes=5))
    yield engine


def report_of(engine: Engine, **options: Any) -> Report:
    plan = find_plan(engine, "21/KH-UBND")
    period = parse_period(None, "03/05/2021", "04/05/2021", plan.period_start, plan.period_end)
    return build_report(engine, plan, period, now=WRITTEN, **options)


def sheet_rows(data: bytes) -> list[list[Any]]:
    sheet = load_workbook(io.BytesIO(data)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def row_starting(rows: list[list[Any]], first: str) -> list[Any]:
    (found,) = [r for r in rows if r and r[0] == first]
    return found


def test_xlsx_is_an_administrative_report_with_figures_as_numbers(two_days: Engine) -> None:
    report = report_of(two_days, by=("unit",))
    rows = sheet_rows(render(report, "xlsx", number="12", place="Lạng Sơn"))  # type: ignore[arg-type]
    cells = [c for r in rows for c in r if c is not None]
    assert report.issuer.upper() in cells or "……" in cells
    assert {NATION, MOTTO, "Số: 12/BC-UBND", DATE_LINE, "BÁO CÁO"} <= set(cells)
    assert "Kết quả thực hiện Kế hoạch số 21/KH-UBND" in cells
    assert any(isinstance(c, str) and "03/05/2021" in c and "04/05/2021" in c for c in cells)

    # The line of commune 06040's station: every figure as the report has it, as a number.
    header = row_starting(rows, "Đơn vị")
    (line,) = [line for line in report.lines if line.key[:2] == ("06040", "station")]
    (row,) = [r for r in rows if r[:2] == list(line.labels)]
    confirmed = header.index(LABELS["confirmed"])
    assert row[confirmed] == line.tally.value("confirmed") == 2
    assert isinstance(row[confirmed], int)
    assert row[header.index(LABELS["expected"])] == 2
    assert row[header.index(LABELS["unconfirmed"])] == 0

    # The target: 2 of the 4 commune-days, 06046 below it, by name.
    (target,) = report.targets
    assert (target.achieved, target.required, target.percent) == (2, 4, 50.0)
    (target_row,) = [
        r for r in rows if r[:2] == [target.channel_title, "1 lượt mỗi ngày ở mỗi đơn vị"]
    ]
    assert target_row[4:7] == [4, 2, 50.0]
    assert target.below[0].name in target_row[7] and "Thất Khê" not in target_row[7]

    assert {"NGƯỜI LẬP BÁO CÁO", "THỦ TRƯỞNG CƠ QUAN"} <= set(cells)
    assert report.mapping_note in cells


def test_without_a_number_the_report_is_left_to_be_numbered_by_hand(two_days: Engine) -> None:
    report = report_of(two_days)
    cells = {c for r in sheet_rows(render(report, "xlsx")) for c in r}  # type: ignore[arg-type]
    assert "Số:      /BC-UBND" in cells
    assert "……, ngày 05 tháng 05 năm 2021" in cells
    whole = {c for r in sheet_rows(render(report, "xlsx", number="7/BC-VHTT")) for c in r}  # type: ignore[arg-type]
    assert "Số: 7/BC-VHTT" in whole


def docx_texts(data: bytes) -> tuple[list[str], list[list[list[str]]]]:
    doc = Document(io.BytesIO(data))
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in doc.tables]
    return [p.text for p in doc.paragraphs], tables


def test_docx_has_the_heading_block_tables_and_signatures(two_days: Engine) -> None:
    report = report_of(two_days, by=("unit",))
    paragraphs, tables = docx_texts(render(report, "docx", number="12", place="Lạng Sơn"))  # type: ignore[arg-type]
    heading = tables[0][0]
    assert heading[0].splitlines() == [report.issuer.upper() or "……", "Số: 12/BC-UBND"]
    assert heading[1].splitlines() == [NATION, MOTTO, DATE_LINE]
    assert "BÁO CÁO" in paragraphs and "Kết quả thực hiện Kế hoạch số 21/KH-UBND" in paragraphs

    lines = tables[1]
    confirmed = lines[0].index(LABELS["confirmed"])
    assert LABELS["displayed"] not in lines[0]  # 0 on every line: left out, and said so
    (line,) = [line for line in report.lines if line.key[:2] == ("06040", "station")]
    (row,) = [r for r in lines if r[:2] == list(line.labels)]
    assert row[confirmed] == "2"
    assert any("Các cột bằng 0" in p for p in paragraphs)

    targets = tables[3]
    assert targets[0][-1] == "Đơn vị chưa đạt"
    (target,) = report.targets
    assert targets[1][:2] == [target.channel_title, "1 lượt mỗi ngày ở mỗi đơn vị"]
    assert targets[1][4:7] == ["4", "2", "50,0"] and target.below[0].name in targets[1][7]

    signature = tables[-1][0]
    assert signature[0].startswith("NGƯỜI LẬP BÁO CÁO") and signature[1].startswith(
        "THỦ TRƯỞNG CƠ QUAN"
    )
    assert "Nơi nhận:" in paragraphs


def test_html_is_one_page_with_charts_and_nothing_from_outside(two_days: Engine) -> None:
    report = report_of(two_days, by=("unit",))
    page = render(report, "html", number="12", place="Lạng Sơn")
    assert isinstance(page, str)
    assert "<script" not in page.lower() and not re.search(r"https?://", page)
    assert "<link" not in page and "src=" not in page and "@import" not in page
    assert page.count("<svg") == 2 and NATION in page and DATE_LINE in page
    assert "2/2 (100%)" in page  # 06040's station: done of expected
    assert "50,0%" in page  # the target
    assert 'name="viewport"' in page and 'class="scroll"' in page
    for key in COLUMNS:
        assert f"<th>{LABELS[key]}</th>" in page


def test_coso_report_writes_each_format_to_its_file(
    two_days: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    runner = CliRunner()
    asked = ["report", "21/KH-UBND", "--from", "03/05/2021", "--until", "04/05/2021"]
    for kind in ("xlsx", "docx", "html"):
        out = tmp_path / f"bao-cao.{kind}"
        done = runner.invoke(
            app,
            [*asked, "--format", kind, "--out", str(out), "--number", "4", "--place", "Lạng Sơn"],
        )
        assert done.exit_code == 0, done.output
        assert out.stat().st_size > 0
    cells = {c for r in sheet_rows((tmp_path / "bao-cao.xlsx").read_bytes()) for c in r}
    assert {"Số: 4/BC-UBND", NATION} <= cells
    paragraphs, tables = docx_texts((tmp_path / "bao-cao.docx").read_bytes())
    assert "BÁO CÁO" in paragraphs
    assert "Số: 4/BC-UBND" in tables[0][0][0]
    assert "Lạng Sơn, ngày" in (tmp_path / "bao-cao.html").read_text(encoding="utf-8")
    refused = runner.invoke(app, [*asked, "--format", "docx"])
    assert refused.exit_code == 2 and "--out" in refused.output


@pytest.fixture
def console(two_days: Engine, settings: Settings) -> Iterator[str]:
    make_user(two_days, "admin", ["administrator"], [])
    make_user(two_days, "xem-a", ["viewer"], ["06040"])
    make_user(two_days, "van-hanh-b", ["operator"], ["06046"])
    make_user(two_days, "xem-khac", ["viewer"], ["06112"])
    with ServerThread(create_app(two_days, settings, ManualClock(WRITTEN))) as server:
        yield server.url


PAGE = "/plans/21/KH-UBND/report"
ASKED = {"from": "03/05/2021", "until": "04/05/2021", "by": "unit"}


def test_the_report_page_shows_the_whole_plan_to_an_administrator(console: str) -> None:
    with signed_in(console, "admin") as client:
        plan_page = client.get("/plans/21/KH-UBND")
        assert f'href="{PAGE}"' in plan_page.text
        page = client.get(PAGE, params=ASKED)
        assert page.status_code == 200
        assert "<script" not in page.text and page.text.count("<svg") == 2
        assert "(06040)" in page.text and "(06046)" in page.text
        assert "03/05/2021" in page.text and "04/05/2021" in page.text
        for kind, media in [
            ("csv", "text/csv"),
            ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ]:
            assert f"{PAGE}.{kind}?" in page.text
            got = client.get(f"{PAGE}.{kind}", params={**ASKED, "number": "3"})
            assert got.status_code == 200 and got.headers["content-type"].startswith(media)
            assert "attachment" in got.headers["content-disposition"]
        cells = {
            c
            for r in sheet_rows(client.get(f"{PAGE}.xlsx", params={**ASKED, "number": "3"}).content)
            for c in r
        }
        assert "Số: 3/BC-UBND" in cells and "Đơn vị: toàn bộ địa bàn của kế hoạch" in cells

        wrong = client.get(PAGE, params={"period": "13/2021"})
        assert wrong.status_code == 400 and "tháng phải từ 01 đến 12" in wrong.text


def test_a_commune_user_gets_their_communes_report_only(console: str) -> None:
    with signed_in(console, "van-hanh-b") as client:
        page = client.get(PAGE, params=ASKED)
        assert page.status_code == 200
        assert "(06046)" in page.text and "(06040)" not in page.text
        rows = sheet_rows(client.get(f"{PAGE}.xlsx", params=ASKED).content)
        cells = {c for r in rows for c in r}
        assert any(isinstance(c, str) and c.startswith("Đơn vị: ") and "06046" in c for c in cells)
        header = row_starting(rows, "Đơn vị")
        lines = rows[rows.index(header) + 1 :]
        (line,) = [r for r in lines if isinstance(r[0], str) and r[0].endswith("(06046)")]
        assert line[header.index(LABELS["expected"])] == 2
        assert line[header.index(LABELS["confirmed"])] == 0
        # Another commune of the plan, asked by name: refused, page and download alike.
        assert client.get(PAGE, params={**ASKED, "unit": "06040"}).status_code == 403
        assert client.get(f"{PAGE}.docx", params={"unit": "06040"}).status_code == 403
        assert client.get(f"{PAGE}.csv", params={"unit": "20"}).status_code == 403
    with signed_in(console, "xem-a") as client:
        text = client.get(f"{PAGE}.csv", params=ASKED).text
        assert "06040" in text and "06046" not in text
    with signed_in(console, "xem-khac") as client:
        for route in (PAGE, f"{PAGE}.csv", f"{PAGE}.xlsx", f"{PAGE}.docx"):
            assert client.get(route).status_code == 403, route
