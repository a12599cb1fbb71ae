"""Hostile and careless input to what coso reads from files and the command line: phone
numbers with letters, names with hidden characters or typed in another Unicode form, CSV
files in other encodings or with absurd cells, workbooks that are not workbooks, and the SMS
pause that several processes notice at once. Each is refused with one clear line naming the
file, line, field and value, writes nothing, and leaves good input working."""

from __future__ import annotations

import threading
import unicodedata
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from channels.endpoints import Endpoint, EndpointGroup, read_endpoints_csv
from channels.sms.phones import PhoneError, to_e164
from channels.sms.recipients import add_opt_out, list_opt_outs, read_recipients
from coso.config import Settings
from coso.db import make_engine
from coso.errors import InputError, InputErrors
from coso.units import AdminUnit, import_legacy_units
from dispatcher.cli.app import app
from dispatcher.service import Dispatcher
from schedules.adhoc import add_blast
from schedules.importer import import_plan_file
from schedules.models import Plan
from tests.plans import SMS_REMINDER_PLAN, WEEKLY_PLAN, write_plan
from tests.sms import (
    add_recipients,
    e164,
    import_sms_plan,
    log_events,
    sms_dispatcher,
    states,
    write_recipients,
)
from tests.twilio_server import TwilioServer

runner = CliRunner()
NOW = datetime(2021, 4, 21, 8, 0, tzinfo=UTC)
LETTERS = ["0912-abc-678", "0912 HOA 678", "0912345678x", "+84 912 ABC 678"]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def one_error_line(output: str) -> str:
    """The command's output is one `error:` line and no traceback."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COLUMNS", "400")
    return settings


# --- phone numbers with letters ------------------------------------------------------


@pytest.mark.parametrize("raw", LETTERS)
def test_a_number_with_letters_is_refused_not_dialled_as_on_a_keypad(raw: str) -> None:
    with pytest.raises(PhoneError, match="chữ cái"):
        to_e164(raw)


def test_full_width_digits_are_still_read_as_the_number() -> None:
    assert to_e164("０９１２ ３４５ ６７８") == "+84912345678"


def test_recipient_files_refuse_the_row_with_letters_by_line(tmp_path: Path) -> None:
    rows = [
        {"name": "An", "phone": "0912345678", "unit": "", "groups": "g"},
        {"name": "Bình", "phone": "0912 HOA 678", "unit": "", "groups": "g"},
        {"name": "Chi", "phone": "0912-abc-678", "unit": "", "groups": "g"},
    ]
    csv_file = write_recipients(tmp_path / "ds.csv", rows)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name", "phone", "unit", "groups"])
    for row in rows:
        sheet.append(list(row.values()))
    xlsx_file = tmp_path / "ds.xlsx"
    book.save(xlsx_file)
    for path in (csv_file, xlsx_file):
        found = read_recipients(None, path)
        assert [r.phone for r in found.recipients] == ["+84912345678"]
        assert [(e.field, e.value, e.line) for e in found.invalid] == [
            ("phone", "0912 HOA 678", 3),
            ("phone", "0912-abc-678", 4),
        ]
        assert all("chữ cái" in str(e) for e in found.invalid)
        # neither became someone else's number: 0912 462 678 (HOA) or 0912 222 678 (abc)
        assert "+84912462678" not in str(found) and "+84912222678" not in str(found)


def test_endpoints_csv_plan_file_and_command_line_refuse_a_number_with_letters(
    engine: Engine, cli_env: Settings, tmp_path: Path
) -> None:
    csv_file = tmp_path / "endpoints.csv"
    csv_file.write_text(
        "channel,address,name,unit\nsms,0912345678,An,06040\nsms,0912 HOA 678,Bình,06040\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["endpoints", "import", str(csv_file)])
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "endpoints.csv:3" in line and "'0912 HOA 678'" in line and "chữ cái" in line
    assert count(engine, Endpoint.__table__) == 0

    plan = write_plan(tmp_path, SMS_REMINDER_PLAN.replace('"0912 345 678"', '"0912 HOA 678"'))
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, cli_env, plan, NOW)
    assert any(
        e.field == "endpoints[0].address" and e.value == "0912 HOA 678" and e.line
        for e in refused.value.errors
    ), refused.value
    assert count(engine, Plan.__table__) == 0

    result = runner.invoke(app, ["sms", "optouts", "add", "0912-abc-678"])
    assert result.exit_code == 2 and "chữ cái" in one_error_line(result.output)


def test_adding_an_opt_out_twice_says_it_was_there_already(engine: Engine) -> None:
    assert add_opt_out(engine, "+84912345678", NOW, "manual") is True
    assert add_opt_out(engine, "+84912345678", NOW, "manual") is False
    assert [o.phone for o in list_opt_outs(engine)] == ["+84912345678"]


# --- the quiet-hours pause, noticed by two processes ---------------------------------


def _local(clock_text: str, day: int = 2) -> datetime:
    """A time in Asia/Ho_Chi_Minh (UTC+7) on `day` May 2021, as UTC."""
    hours, minutes = map(int, clock_text.split(":"))
    return datetime(2021, 5, day, hours, minutes, tzinfo=UTC) - timedelta(hours=7)


class _Clock:
    """One clock both dispatchers read (two hosts agree on the time)."""

    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value

    def set(self, value: datetime) -> None:
        self.value = value


def test_two_dispatchers_over_one_database_log_one_pause_per_schedule_and_night(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    add_recipients(engine, tmp_path, 6)
    clock = _Clock(_local("22:05"))
    other_engine = make_engine(settings.database.url)  # a second host, its own connections
    with TwilioServer() as gateway:
        first = sms_dispatcher(
            engine, settings, gateway.url, clock, quiet_start="22:00", quiet_end="07:00"
        )
        second = Dispatcher(other_engine, settings, clock, channels=dict(first.channels))
        plan = import_sms_plan(engine, settings, tmp_path)
        blast = add_blast(
            engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now(),
            validity=timedelta(hours=12),
        )  # fmt: skip
        first.fire()
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def drain(dispatcher: Dispatcher) -> None:
            try:
                start.wait(timeout=30)
                dispatcher.drain()
            except BaseException as exc:  # reported below
                failures.append(exc)

        for _ in range(3):  # both notice the quiet hours, at once and again later
            threads = [threading.Thread(target=drain, args=(d,)) for d in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not failures, failures
            clock.set(clock.now() + timedelta(minutes=20))
        assert gateway.creates == [], "a message went out in quiet hours"
        paused = log_events(engine, event="paused")
        assert len(paused) == 1, [p.detail for p in paused]
        assert "6 message(s) wait until" in paused[0].detail

        # after the night the messages still go out, once each
        clock.set(_local("07:00", day=3))
        first.tick()
        second.tick()
        assert states(engine, blast.id) == {"sent": 6}
        assert Counter(gateway.creates) == {e164(n): 1 for n in range(6)}

        # the next night's pause of another blast is logged: once
        clock.set(_local("22:10", day=3))
        add_blast(
            engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, clock.now(),
            validity=timedelta(hours=12),
        )  # fmt: skip
        first.tick()
        second.tick()
        assert len(log_events(engine, event="paused")) == 2
    other_engine.dispose()


# --- plan numbers and other names ----------------------------------------------------


def _plan(number: str) -> str:
    return WEEKLY_PLAN.replace('number = "95/KH-UBND"', f'number = "{number}"')


def test_a_plan_number_typed_in_another_unicode_form_is_the_same_plan(
    engine: Engine, cli_env: Settings, tmp_path: Path
) -> None:
    settings = cli_env
    number = "Kế hoạch 95/KH-UBND"
    composed, decomposed = (unicodedata.normalize(f, number) for f in ("NFC", "NFD"))
    assert composed != decomposed
    import_plan_file(engine, settings, write_plan(tmp_path, _plan(decomposed)), NOW)
    with engine.connect() as conn:
        assert conn.scalars(select(Plan.__table__.c.number)).all() == [composed]
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, settings, write_plan(tmp_path, _plan(composed), "b.toml"), NOW)
    assert [e.field for e in refused.value.errors] == ["plan.number"]
    assert refused.value.errors[0].reason.startswith("a plan with this number already exists")
    assert count(engine, Plan.__table__) == 1
    shown = runner.invoke(app, ["plan", "show", decomposed])  # typed the other way: found
    assert shown.exit_code == 0 and composed in shown.output, shown.output


@pytest.mark.parametrize(
    ("written", "value", "reason"),
    [
        ("   ", "   ", "không được để trống"),
        ("95/KH\\u0000", "95/KH\x00", "U+0000"),
        ("95/KH-\u202eDBNU", "95/KH-\u202eDBNU", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("95/KH\u200b-UBND", "95/KH\u200b-UBND", "U+200B ZERO WIDTH SPACE"),
    ],
)
def test_a_blank_or_hidden_character_plan_number_is_refused_naming_it(
    engine: Engine, settings: Settings, tmp_path: Path, written: str, value: str, reason: str
) -> None:
    path = write_plan(tmp_path, _plan(written))
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, settings, path, NOW)
    [error] = refused.value.errors
    assert (error.field, error.value, error.line) == ("plan.number", value, 2)
    assert reason in error.reason
    assert count(engine, Plan.__table__) == 0
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN, "ok.toml"), NOW)
    assert count(engine, Plan.__table__) == 1


def test_a_nul_anywhere_in_a_plan_file_is_refused_not_a_database_error(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    text = WEEKLY_PLAN.replace('name = "CCHC Mon/Thu"', 'name = "CCHC\\u0000"').replace(
        'title = "Tuyên truyền', 'title = "\\u0000Tuyên truyền'
    )
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, settings, write_plan(tmp_path, text), NOW)
    fields = sorted(e.field for e in refused.value.errors)
    assert fields == ["plan.title", "schedules[0].name"], refused.value
    assert all("U+0000" in e.reason and e.line for e in refused.value.errors)
    assert count(engine, Plan.__table__) == 0


def test_names_in_endpoint_unit_and_recipient_files_are_nfc_and_without_hidden_characters(
    engine: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    nfd = unicodedata.normalize("NFD", "Loa Thất Khê")
    good.write_text(f"channel,address,name,unit\nweb,bulletin:06040,{nfd},06040\n", "utf-8")
    [row] = read_endpoints_csv(engine, good)
    assert row["name"] == "Loa Thất Khê"

    bad = tmp_path / "bad.csv"
    bad.write_text("channel,address,name,unit\nweb,bulletin:06040,Loa\x00,06040\n", "utf-8")
    with pytest.raises(InputError) as refused:
        read_endpoints_csv(engine, bad)
    assert (refused.value.field, refused.value.value, refused.value.line) == ("name", "Loa\x00", 2)

    units = tmp_path / "old.csv"
    units.write_text(
        "code,name,kind,level,parent_code,new_codes\n"
        "99001,Xã Cũ,xã,3,,06040\n"
        "99002,\u202eXã Giả,xã,3,,06040\n",
        "utf-8",
    )
    before = count(engine, AdminUnit.__table__)
    with pytest.raises(InputError) as refused:
        import_legacy_units(engine, units)
    assert (refused.value.field, refused.value.line) == ("name", 3)
    assert "U+202E" in refused.value.reason
    assert count(engine, AdminUnit.__table__) == before

    people = write_recipients(
        tmp_path / "ds.csv",
        [
            {"name": "An", "phone": "0912345678", "unit": "", "groups": "to-1\u202e"},
            {"name": "Bình\x00", "phone": "0912345679", "unit": "", "groups": ""},
            {"name": "Chi", "phone": "0912345670", "unit": "", "groups": "to-1"},
        ],
    )
    found = read_recipients(engine, people)
    assert [(e.field, e.line) for e in found.invalid] == [("groups", 2), ("name", 3)]
    assert [r.groups for r in found.recipients] == [("to-1",)]
    assert count(engine, EndpointGroup.__table__) == 0


# --- files that are not what they say ------------------------------------------------

ENDPOINTS = "channel,address,name,unit\nweb,bulletin:06040,Bản tin Thất Khê,06040\n"


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-be", "utf-8-sig", "utf-32", "utf-16-le without BOM"]
)
def test_an_endpoint_csv_in_utf16_or_with_a_bom_is_read(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "endpoints.csv"
    data = ENDPOINTS.encode(encoding.split()[0])
    if encoding == "utf-16-be":
        data = "\ufeff".encode(encoding) + data
    path.write_bytes(data)
    assert read_endpoints_csv(engine, path) == [
        {
            "channel": "web",
            "address": "bulletin:06040",
            "name": "Bản tin Thất Khê",
            "unit_code": "06040",
        }
    ]


TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def _cp1258(text: str) -> bytes:
    """Vietnamese as Windows-1258 writes it: letters (â, ê, ơ…) with separate tone marks."""
    out = b""
    for char in unicodedata.normalize("NFC", text):
        decomposed = unicodedata.normalize("NFD", char)
        tones = "".join(c for c in decomposed if c in TONE_MARKS)
        letter = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in tones))
        out += (letter + tones).encode("cp1258")
    return out


def _zip_bomb(path: Path) -> None:
    """A real workbook whose sheet unpacks to a quarter of a gigabyte."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name", "phone"])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                z.writestr(info.filename, source.read(info.filename))
                continue
            with z.open(info.filename, "w", force_zip64=True) as sheet_xml:
                sheet_xml.write(source.read(info.filename))
                block = b" " * (1 << 20)
                for _ in range(250):
                    sheet_xml.write(block)


def _damaged_workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name", "phone"])
    sheet.append(["An", "0912345678"])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as z:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            z.writestr(info.filename, data)


def test_every_command_that_reads_a_file_refuses_bad_ones_with_one_clear_line(
    engine: Engine, cli_env: Settings, tmp_path: Path
) -> None:
    huge = "x" * 200_000
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> Path:
        files[name] = tmp_path / name
        files[name].write_bytes(data)
        return files[name]

    put("huge.csv", f"channel,address,name,unit\nweb,bulletin:06040,{huge},06040\n".encode())
    put("cp1258.csv", _cp1258(ENDPOINTS))
    put("huge-sms.csv", f"name,phone\n{huge},0912345678\n".encode())
    put("cp1258-sms.csv", _cp1258("name,phone\nNguyễn Văn An,0912345678\n"))
    put("text.xlsx", b"name,phone\nAn,0912345678\n")
    put("huge-units.csv", f"code,name,kind,level,parent_code,new_codes\n1,{huge},x,3,,\n".encode())
    put("text.wav", b"this is a text file, not audio\n")
    _zip_bomb(tmp_path / "bomb.xlsx")
    _damaged_workbook(tmp_path / "damaged.xlsx")
    plan_with_audio = WEEKLY_PLAN.replace(
        'state = "approved"\n', 'state = "approved"\n\n', 1
    ).replace(
        "[[endpoints]]",
        '[[content]]\nkey = "loa"\nkind = "audio"\ntitle = "Loa"\naudio = "text.wav"\n\n'
        "[[endpoints]]",
        1,
    )
    write_plan(tmp_path, plan_with_audio, "audio-plan.toml")
    put("empty.wav", b"")
    (tmp_path / "a-folder").mkdir()
    write_plan(tmp_path, plan_with_audio.replace("text.wav", "empty.wav"), "empty-audio.toml")

    before = {t: count(engine, t) for t in (Endpoint.__table__, AdminUnit.__table__)}
    cases = [
        (["endpoints", "import", "huge.csv"], ["huge.csv:2", "131,072"]),
        (["endpoints", "import", "cp1258.csv"], ["cp1258.csv:2", "UTF-8"]),
        (["sms", "import", "huge-sms.csv"], ["huge-sms.csv:2", "131,072"]),
        (["sms", "import", "cp1258-sms.csv"], ["cp1258-sms.csv:2", "UTF-8"]),
        (["sms", "import", "text.xlsx"], ["text.xlsx", ".xlsx"]),
        (["sms", "import", "bomb.xlsx"], ["bomb.xlsx", "giải nén"]),
        (["sms", "import", "damaged.xlsx"], ["damaged.xlsx", "bị hỏng"]),
        (["units", "import-legacy", "huge-units.csv"], ["huge-units.csv:2", "131,072"]),
        (["plan", "import", "audio-plan.toml"], ["text.wav", "wav"]),
        (["plan", "import", "empty-audio.toml"], ["empty.wav", "phần đầu WAV"]),
        (["plan", "import", "no-such-folder"], ["no-such-folder", "not found"]),
        (["endpoints", "import", "a-folder"], ["a-folder", "thư mục"]),
    ]
    for args, expected in cases:
        path = tmp_path / args[-1]
        result = runner.invoke(app, [*args[:-1], str(path)])
        assert result.exit_code == 2, (args, result.output, result.exception)
        line = one_error_line(result.output)
        for word in expected:
            assert word in line, (args, line)
    assert {t: count(engine, t) for t in before} == before
    assert count(engine, Plan.__table__) == 0

    good = tmp_path / "good.csv"
    good.write_text(ENDPOINTS, encoding="utf-8")
    result = runner.invoke(app, ["endpoints", "import", str(good)])
    assert result.exit_code == 0 and "1 endpoints added" in result.output
