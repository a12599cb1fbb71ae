"""Recipients from CSV and XLSX: E.164, old 11-digit numbers converted, bad rows reported with
their line and left out, repeats merged; the opt-out words."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.sms.phones import PhoneError, to_e164
from channels.sms.recipients import is_stop_request, read_recipients, save_recipients
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.cli.app import app
from tests.sms import write_recipients


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0162 345 6789", "+84323456789"),  # Viettel 0162 → 032
        ("01234567890", "+84834567890"),  # VinaPhone 0123 → 083
        ("0128.888.9999", "+84788889999"),  # MobiFone 0128 → 078
        ("+84 98 123 4567", "+84981234567"),
        ("84981234567", "+84981234567"),
        ("(+84) 912-345-678", "+84912345678"),
    ],
)
def test_numbers_become_e164_and_old_ones_their_new_form(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "12345", "098123456", "0243 825 3536", "hello"])
def test_what_is_not_a_mobile_number_is_refused(raw: str) -> None:
    with pytest.raises(PhoneError):
        to_e164(raw)


def test_csv_import_reports_bad_rows_by_line_and_merges_repeats(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = write_recipients(
        tmp_path / "danh-sach.csv",
        [
            {"name": "Nguyễn Văn An", "phone": "0981234567", "unit": "06040", "groups": "xa-vien"},
            {"name": "Trần Thị Bình", "phone": "0162 345 6789", "unit": "", "groups": ""},
            {"name": "Sai số", "phone": "12345", "unit": "", "groups": ""},
            {
                "name": "Lê Văn Cường",
                "phone": "+84 98 123 4567",
                "unit": "",
                "groups": "to-truong; xa-vien",
            },
            {"name": "Đơn vị lạ", "phone": "0912345678", "unit": "99999", "groups": ""},
            {"name": "Máy bàn", "phone": "024 3825 3536", "unit": "", "groups": ""},
        ],
    )
    found = read_recipients(engine, path)
    assert [(e.line, e.field) for e in found.invalid] == [(4, "phone"), (6, "unit"), (7, "phone")]
    assert f"{path}:4" in str(found.invalid[0])
    assert [r.phone for r in found.recipients] == ["+84981234567", "+84323456789"]
    assert found.merged == 1 and found.converted == 1
    first = found.recipients[0]
    assert first.name == "Nguyễn Văn An" and first.groups == ("xa-vien", "to-truong")

    counts = save_recipients(engine, found.recipients, SystemClock().now())
    assert (counts.added, counts.groups) == (2, 2)
    E, G, M = Endpoint.__table__, EndpointGroup.__table__, GroupMember.__table__
    with engine.connect() as conn:
        phones = set(conn.scalars(select(E.c.address).where(E.c.channel == "sms")))
        members = conn.execute(
            select(G.c.name, E.c.address)
            .join(M, M.c.group_id == G.c.id)
            .join(E, E.c.id == M.c.endpoint_id)
        ).all()
    assert phones == {"+84981234567", "+84323456789"}
    assert sorted(members) == [("to-truong", "+84981234567"), ("xa-vien", "+84981234567")]
    again = save_recipients(engine, found.recipients, SystemClock().now())
    assert (again.added, again.updated, again.groups) == (0, 2, 0)


def test_xlsx_with_vietnamese_headings_and_numbers_typed_as_numbers(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Họ tên", "Số điện thoại", "Đơn vị", "Nhóm"])
    sheet.append(["Hoàng Văn Dũng", 981234567, "06046", "thon-na-linh"])  # Excel dropped the 0
    sheet.append(["Vi Thị Én", "01689998877", None, None])
    sheet.append(["Không số", None, None, None])
    path = tmp_path / "danh-sach.xlsx"
    book.save(path)
    found = read_recipients(engine, path)
    assert [r.phone for r in found.recipients] == ["+84981234567", "+84389998877"]
    assert [(e.line, e.field) for e in found.invalid] == [(4, "phone")]


def test_cli_import_lists_refused_rows_and_saves_the_rest(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    path = write_recipients(
        tmp_path / "ds.csv",
        [
            {"name": "A", "phone": "0981234567", "unit": "", "groups": "g"},
            {"name": "B", "phone": "không có", "unit": "", "groups": ""},
        ],
    )
    result = CliRunner().invoke(app, ["sms", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ds.csv:3: phone = 'không có'" in result.output
    assert "nothing saved" in result.output
    result = CliRunner().invoke(app, ["sms", "import", str(path)])
    assert "1 recipient(s) read, 1 row(s) refused" in result.output and "1 new" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(Endpoint.__table__.c.address)) == "+84981234567"


@pytest.mark.parametrize(
    ("body", "stop"),
    [
        ("STOP", True),
        ("stop", True),
        ("TU CHOI", True),
        ("Từ chối", True),
        ("từ chối nhận tin", True),
        ("Tôi đồng ý", False),
        ("Stopping by", False),
        ("", False),
    ],
)
def test_opt_out_words(body: str, stop: bool) -> None:
    assert is_stop_request(body) is stop
