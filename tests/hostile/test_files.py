"""Files people prepare: endpoint lists (CSV), recipient lists (CSV, XLSX) and audio, with
bad cells, bad encodings or no audio in them. Each is refused with a line naming the file
and the line (or field), nothing bad is written, and a good file afterwards still goes in
and is used."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.utils.exceptions import IllegalCharacterError
from sqlalchemy import Engine, func, select

from channels.endpoints import Endpoint
from coso.config import Settings
from tests.hostile.conftest import (
    Cli,
    assert_clear_refusal,
    assert_unchanged,
    restore,
    snapshot,
)
from tests.hostile.strategies import (
    BadAudio,
    BadBytes,
    BadRow,
    bad_audio,
    bad_endpoint_rows,
    bad_recipient_rows,
    broken_encodings,
)
from tests.loudspeakers import clip, import_broadcast, slot_in

GOOD_ENDPOINTS = [
    {"channel": "web", "address": "bulletin:06040", "name": "Phường Đông Kinh", "unit": "06040"},
    {"channel": "web", "address": "bulletin:06046", "name": "Phường Kỳ Lừa", "unit": "06046"},
]
GOOD_RECIPIENT = {"name": "Trần Thị Bình", "phone": "0987000002", "unit": "06046", "groups": "a"}


def _csv(rows: list[dict[str, str]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _endpoint_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Endpoint)) or 0


# --- endpoints ----------------------------------------------------------------------------


def test_an_endpoint_file_with_one_bad_cell_is_refused_whole(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    before = snapshot(engine)

    @given(bad_endpoint_rows(), st.integers(0, 2))
    def refused(bad: BadRow, where: int) -> None:
        rows = [*GOOD_ENDPOINTS]
        rows.insert(where, bad.cells)
        path = tmp_path / "diem.csv"
        path.write_text(_csv(rows, list(bad.cells)), encoding="utf-8")
        result = cli("endpoints", "import", str(path))
        assert_unchanged(engine, before)
        assert_clear_refusal(result, f"diem.csv:{where + 2}")

    refused()
    _good_endpoints_go_in(cli, engine, tmp_path)


def _endpoint_rows(engine: Engine) -> list[tuple[object, ...]]:
    """The endpoints as a list shows them (no ids or times)."""
    table = Endpoint.__table__
    columns = (table.c.channel, table.c.address, table.c.name, table.c.unit_code)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*columns).order_by(*columns))]


def test_an_endpoint_file_saved_badly_is_refused_naming_it(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    """Bytes no encoding reads are refused naming the file; a file saved as UTF-16 or
    UTF-8 with a BOM is read as its UTF-8 twin."""
    before = snapshot(engine)
    text = _csv(GOOD_ENDPOINTS, list(GOOD_ENDPOINTS[0]))
    path = tmp_path / "diem.csv"
    path.write_text(text.replace("Phường", "Phường " * 3), encoding="utf-8")
    assert cli("endpoints", "import", str(path)).exit_code == 0
    twin = _endpoint_rows(engine)
    restore(engine, before)

    @given(broken_encodings(text.replace("Phường", "Phường " * 3)))
    def refused(bad: BadBytes) -> None:
        path.write_bytes(bad.raw)
        result = cli("endpoints", "import", str(path))
        if result.exit_code == 0:  # what survives the damage went in: a valid file after all
            added = _endpoint_rows(engine)
            restore(engine, before)
            assert bad.readable or bad.what == "truncated", result.output
            if bad.readable:
                assert added == twin
            return
        assert not bad.readable, result.output
        assert_unchanged(engine, before)
        assert_clear_refusal(result, "diem.csv")

    refused()
    _good_endpoints_go_in(cli, engine, tmp_path)


def test_a_huge_csv_field_is_refused_naming_the_line(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    before = snapshot(engine)
    path = tmp_path / "diem.csv"
    rows = [*GOOD_ENDPOINTS, {**GOOD_ENDPOINTS[0], "name": "x" * 200_000}]
    path.write_text(_csv(rows, list(GOOD_ENDPOINTS[0])), encoding="utf-8")
    result = cli("endpoints", "import", str(path))
    assert_unchanged(engine, before)
    assert_clear_refusal(result, "diem.csv:4")


@pytest.mark.parametrize(
    "address", ["bulletin:", "bulletin:06019 x", "\u202ebulletin:06019", "x" * 300, "06019"]
)
def test_a_web_address_that_is_none_is_refused_naming_it(
    address: str, cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    before = snapshot(engine)
    path = tmp_path / "diem.csv"
    rows = [*GOOD_ENDPOINTS, {**GOOD_ENDPOINTS[0], "address": address}]
    path.write_text(_csv(rows, list(GOOD_ENDPOINTS[0])), encoding="utf-8")
    result = cli("endpoints", "import", str(path))
    assert_unchanged(engine, before)
    assert_clear_refusal(
        result, f"diem.csv:4: address = {address!r}: not bulletin:<unit code> or wordpress:"
    )


def _good_endpoints_go_in(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    count = _endpoint_count(engine)
    path = tmp_path / "tot.csv"
    path.write_text(_csv(GOOD_ENDPOINTS, list(GOOD_ENDPOINTS[0])), encoding="utf-8")
    result = cli("endpoints", "import", str(path))
    assert result.exit_code == 0, result.output
    assert _endpoint_count(engine) == count + 2


# --- recipients ---------------------------------------------------------------------------


def _xlsx(path: Path, rows: list[dict[str, str]]) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    book.save(path)


def test_recipient_rows_with_a_bad_cell_are_left_out_naming_their_line(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    before = snapshot(engine)

    @given(st.lists(bad_recipient_rows(), min_size=1, max_size=3), st.sampled_from(["csv", "xlsx"]))
    def refused(bad: list[BadRow], kind: str) -> None:
        rows = [b.cells for b in bad]
        path = tmp_path / f"ds-{uuid.uuid4().hex[:6]}.{kind}"
        if kind == "csv":
            path.write_text(_csv(rows, list(rows[0])), encoding="utf-8")
        else:
            try:
                _xlsx(path, rows)
            except (ValueError, IllegalCharacterError):  # a cell no workbook can hold (NUL)
                return
        result = cli("sms", "import", str(path))
        assert_unchanged(engine, before)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{type(result.exception).__name__}: {result.exception}"
        )
        assert "Traceback" not in result.output
        flat = " ".join(result.output.split())
        if result.exit_code == 0:  # bad rows listed and left out
            for line in range(2, len(rows) + 2):
                assert f"{path.name}:{line}" in flat, result.output[-1500:]
        else:
            assert_clear_refusal(result, path.name)

    refused()
    path = tmp_path / "tot.csv"
    path.write_text(_csv([GOOD_RECIPIENT], list(GOOD_RECIPIENT)), encoding="utf-8")
    result = cli("sms", "import", str(path))
    assert result.exit_code == 0, result.output
    listed = cli("endpoints", "list", "--channel", "sms")
    assert "+84987000002" in listed.output


def test_a_recipient_file_saved_badly_is_refused_naming_it(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    """Bytes no encoding reads are refused naming the file (as is any text named .xlsx);
    a CSV saved as UTF-16 or UTF-8 with a BOM is read as its UTF-8 twin; a raw NUL is a bad
    cell, whose row is left out naming its line."""
    before = snapshot(engine)
    text = _csv([GOOD_RECIPIENT] * 3, list(GOOD_RECIPIENT))
    twin_path = tmp_path / "ds-utf8.csv"
    twin_path.write_text(text, encoding="utf-8")
    assert cli("sms", "import", str(twin_path)).exit_code == 0
    twin = _endpoint_rows(engine)
    assert ("sms", "+84987000002", "Trần Thị Bình", "06046") in twin
    restore(engine, before)

    @given(broken_encodings(text), st.sampled_from(["csv", "xlsx"]))
    def refused(bad: BadBytes, kind: str) -> None:
        if bad.what == "truncated" and kind == "csv":
            return  # a shorter valid file
        path = tmp_path / f"ds.{kind}"
        path.write_bytes(bad.raw)
        result = cli("sms", "import", str(path))
        if bad.readable and kind == "csv":
            added = _endpoint_rows(engine)
            restore(engine, before)
            assert result.exit_code == 0, result.output
            assert added == twin
            return
        if bad.what == "nul byte" and kind == "csv" and result.exit_code == 0:
            # a NUL in a cell is a bad cell: its row is left out naming its line, the rest in
            line = bad.raw[: bad.raw.index(b"\x00")].count(b"\n") + 1
            added = _endpoint_rows(engine)
            restore(engine, before)
            assert f"ds.csv:{line}" in " ".join(result.output.split()), result.output
            assert set(added) <= set(twin), added
            return
        assert_unchanged(engine, before)
        assert_clear_refusal(result, f"ds.{kind}")

    refused()


# --- audio --------------------------------------------------------------------------------


def test_a_file_that_is_no_audio_is_refused_and_good_audio_still_goes_in(
    cli: Cli, engine: Engine, settings: Settings, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    media = tmp_path / "media"
    monkeypatch.setenv("COSO_MEDIA__DIR", str(media))
    settings.media.dir = str(media)
    good = clip(tmp_path, 0.5)
    import_broadcast(engine, settings, tmp_path, ["loa-a"], slot_in(3600), good)
    before = snapshot(engine)
    files_before = sorted(media.iterdir())

    @given(bad_audio(good.read_bytes()))
    def refused(bad: BadAudio) -> None:
        path = tmp_path / bad.name
        path.write_bytes(bad.raw)
        result = cli("content", "audio", "95/KH-UBND", "loa", str(path))
        assert_unchanged(engine, before)
        assert_clear_refusal(result, bad.name)
        assert sorted(media.iterdir()) == files_before

    refused()
    louder = clip(tmp_path, 0.7, freq=660)
    result = cli("content", "audio", "95/KH-UBND", "loa", str(louder))
    assert result.exit_code == 0, result.output
    assert len(list(media.iterdir())) == len(files_before) + 1
