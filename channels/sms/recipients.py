"""SMS recipients (endpoints of channel `sms`, address = E.164 number) imported from CSV or
XLSX, and the opt-out list that every non-emergency blast honours."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, select, update
from sqlmodel import Field, SQLModel

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.sms.phones import PhoneError, to_e164
from content.sms_text import khong_dau
from coso.csvfile import csv_lines
from coso.db import chunks, insert_ignoring_duplicates, write
from coso.errors import InputError
from coso.names import check_name, length_problem, nfc, shown, text_problem
from coso.units import shipped_unit_tree, unit_tree

CHANNEL = "sms"
# Accepted headings for each column (lower-cased, spaces as underscores).
HEADINGS = {
    "name": ("name", "ho_ten", "họ_tên", "ten", "tên"),
    "phone": ("phone", "so_dien_thoai", "số_điện_thoại", "dien_thoai", "điện_thoại", "sdt"),
    "unit": ("unit", "don_vi", "đơn_vị", "unit_code", "ma_don_vi"),
    "groups": ("groups", "group", "nhom", "nhóm"),
}
GROUP_SEPARATORS = (";", ",", "|")


class SmsOptOut(SQLModel, table=True):
    """A number that asked for no more messages (STOP / TU CHOI, error 21610, or by hand)."""

    __tablename__ = "sms_opt_out"

    phone: str = Field(primary_key=True)
    at: datetime
    source: str  # inbound | gateway | manual
    detail: str = ""


@dataclass(frozen=True)
class Recipient:
    phone: str  # E.164
    name: str
    unit_code: str | None
    groups: tuple[str, ...]
    line: int  # where it was first seen


@dataclass
class RecipientFile:
    """What a file holds: the valid recipients (duplicates merged) and the rows refused."""

    recipients: list[Recipient] = field(default_factory=list)
    invalid: list[InputError] = field(default_factory=list)
    merged: int = 0  # rows that repeated a number already read
    converted: int = 0  # old 11-digit numbers moved to their 10-digit form


def _heading(text: object) -> str:
    return str(text or "").strip().lower().replace(" ", "_")


def _columns(headings: list[object], source: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, heading in enumerate(headings):
        key = _heading(heading)
        for column, names in HEADINGS.items():
            if key in names and column not in found:
                found[column] = index
    if "phone" not in found:
        raise InputError(
            "columns",
            [str(h) for h in headings if h is not None],
            "no phone column; expected name, phone, unit, groups "
            "(or họ tên, số điện thoại, đơn vị, nhóm)",
            source=source,
        )
    return found


# An XLSX is a zip: one whose parts unpack to more than this is refused unread.
XLSX_UNPACKED_LIMIT = 200 * 1024 * 1024


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    """Rows of the first sheet; a file that is not a workbook, or unpacks to something
    huge, is refused naming the file."""
    import zipfile

    from openpyxl import load_workbook

    source = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            "file", source, "không phải tệp Excel .xlsx (có thể là tệp khác đổi tên?)"
        ) from exc
    if unpacked > XLSX_UNPACKED_LIMIT:
        raise InputError(
            "file",
            source,
            f"giải nén ra {unpacked:,} byte, quá giới hạn {XLSX_UNPACKED_LIMIT:,}: "
            "không phải danh sách thật",
        )
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a damaged file
        raise InputError("file", source, f"not a readable XLSX workbook: {exc}") from exc
    number = 0
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # damaged sheet XML surfaces while it is read
                raise InputError(
                    "file",
                    source,
                    f"hàng {number + 1} không đọc được: tệp .xlsx bị hỏng ({exc})",
                    source=source,
                    line=number + 1,
                ) from exc
            number += 1
            yield number, list(row)
    finally:
        book.close()


def _table_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    """(line or row number, cells) of a CSV (coso.csvfile: UTF-8, or UTF-16 with its BOM)
    or an XLSX file."""
    if not path.is_file():
        raise InputError("file", str(path), "not found")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        yield from _xlsx_rows(path)
        return
    if path.suffix.lower() not in (".csv", ".txt"):
        raise InputError("file", str(path), "not a .csv or .xlsx file")
    for line, cells in csv_lines(path):
        yield line, list(cells)


def _cell(row: list[object], index: int | None) -> str:
    if index is None or index >= len(row) or row[index] is None:
        return ""
    value = row[index]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number typed into a spreadsheet cell
    text = nfc(str(value)).strip()
    if isinstance(value, int) and not text.startswith("0") and len(text) in (9, 10):
        text = "0" + text  # Excel drops the leading 0 of 0912345678
    return text


def read_recipients(engine: Engine | None, path: Path) -> RecipientFile:
    """Read and check a whole file; nothing is written. Bad rows are listed with their line
    number and left out; a number seen twice is one recipient with the groups of both.
    Without a database (`engine` None), units are checked against the current ones."""
    source = str(path)
    rows = _table_rows(path)
    result = RecipientFile()
    header = next(rows, None)
    if header is None:
        raise InputError("file", source, "is empty")
    columns = _columns(header[1], source)
    units = unit_tree(engine) if engine is not None else shipped_unit_tree()
    index: dict[str, int] = {}
    for line, row in rows:
        if not any(_cell(row, i) for i in range(len(row))):
            continue  # a blank line
        raw_phone = _cell(row, columns["phone"])
        try:
            phone = to_e164(raw_phone)
        except PhoneError as exc:
            result.invalid.append(
                InputError("phone", shown(raw_phone), str(exc), source=source, line=line)
            )
            continue
        unit = _cell(row, columns.get("unit")) or None
        if unit is not None:
            try:
                unit = units.current_for(unit)
            except InputError as exc:
                result.invalid.append(
                    InputError("unit", shown(unit), exc.reason, source=source, line=line)
                )
                continue
        groups_text = _cell(row, columns.get("groups"))
        for sep in GROUP_SEPARATORS[1:]:
            groups_text = groups_text.replace(sep, GROUP_SEPARATORS[0])
        name = _cell(row, columns.get("name"))
        try:
            groups = tuple(
                check_name("groups", g, source=source, line=line)
                for g in groups_text.split(GROUP_SEPARATORS[0])
                if g.strip()
            )
        except InputError as exc:
            result.invalid.append(exc)
            continue
        problem = text_problem(name) or length_problem(name)
        if problem:
            result.invalid.append(
                InputError("name", shown(name), problem, source=source, line=line)
            )
            continue
        digits = "".join(c for c in raw_phone if c.isdigit())
        if len(digits) == 11 and digits.startswith("01"):
            result.converted += 1
        if phone in index:
            result.merged += 1
            first = result.recipients[index[phone]]
            result.recipients[index[phone]] = Recipient(
                phone,
                first.name or name,
                first.unit_code or unit,
                tuple(dict.fromkeys(first.groups + groups)),
                first.line,
            )
            continue
        index[phone] = len(result.recipients)
        result.recipients.append(Recipient(phone, name, unit, groups, line))
    return result


@dataclass(frozen=True)
class ImportCounts:
    added: int
    updated: int
    groups: int


def save_recipients(engine: Engine, recipients: Iterable[Recipient], now: datetime) -> ImportCounts:
    """Add new recipients, update the name and unit of known ones (when the file gives
    them), and add group memberships (groups are created as needed). One transaction."""
    endpoint, group_t, member = (
        Endpoint.__table__,
        EndpointGroup.__table__,
        GroupMember.__table__,
    )
    people = list(recipients)
    with write(engine) as conn:
        known = {
            address: eid
            for eid, address in conn.execute(
                select(endpoint.c.id, endpoint.c.address).where(endpoint.c.channel == CHANNEL)
            )
        }
        new = [r for r in people if r.phone not in known]
        for batch in chunks(new, 2000):
            conn.execute(
                insert_ignoring_duplicates(conn, endpoint),
                [
                    {
                        "channel": CHANNEL,
                        "address": r.phone,
                        "name": r.name,
                        "unit_code": r.unit_code,
                        "enabled": True,
                        "created_at": now,
                    }
                    for r in batch
                ],
            )
        updated = 0
        for r in people:
            if r.phone in known and (r.name or r.unit_code):
                values = {k: v for k, v in (("name", r.name), ("unit_code", r.unit_code)) if v}
                conn.execute(
                    update(endpoint).where(endpoint.c.id == known[r.phone]).values(**values)
                )
                updated += 1
        ids = {
            address: eid
            for eid, address in conn.execute(
                select(endpoint.c.id, endpoint.c.address).where(endpoint.c.channel == CHANNEL)
            )
        }
        wanted = {g for r in people for g in r.groups}
        existing = {
            name: (gid, channel)
            for gid, name, channel in conn.execute(
                select(group_t.c.id, group_t.c.name, group_t.c.channel).where(
                    group_t.c.name.in_(wanted)
                )
            )
        }
        for name in sorted(wanted):
            if name in existing and existing[name][1] != CHANNEL:
                raise InputError(
                    "groups", name, f"is a group of {existing[name][1]} endpoints, not of sms"
                )
        missing = sorted(wanted - existing.keys())
        if missing:
            conn.execute(
                group_t.insert(),
                [
                    {"name": n, "channel": CHANNEL, "unit_codes": [], "description": ""}
                    for n in missing
                ],
            )
        group_ids = {
            name: gid
            for gid, name in conn.execute(
                select(group_t.c.id, group_t.c.name).where(group_t.c.name.in_(wanted))
            )
        }
        links = [
            {"group_id": group_ids[g], "endpoint_id": ids[r.phone]}
            for r in people
            for g in r.groups
        ]
        for batch in chunks(links, 2000):
            conn.execute(insert_ignoring_duplicates(conn, member), list(batch))
    return ImportCounts(added=len(new), updated=updated, groups=len(missing))


# --- opt-outs ---------------------------------------------------------------------------

STOP_WORDS = ("STOP", "TU CHOI", "HUY", "UNSUBSCRIBE")


def is_stop_request(body: str) -> bool:
    """'STOP', 'stop', 'Từ chối', 'TU CHOI' (first words of an inbound SMS) ask to opt out."""
    words = " ".join(khong_dau(body).upper().replace(".", " ").split())
    return any(words == w or words.startswith(w + " ") for w in STOP_WORDS)


def record_opt_out(
    conn: Connection, phone: str, at: datetime, source: str, detail: str = ""
) -> bool:
    """Record an opt-out in the caller's transaction; False when it was there already."""
    table = SmsOptOut.__table__
    # RETURNING, not rowcount: on PostgreSQL (psycopg) its rowcount reads -1
    added = conn.execute(
        insert_ignoring_duplicates(conn, table).returning(table.c.phone),
        {"phone": phone, "at": at, "source": source, "detail": detail[:500]},
    ).first()
    return added is not None


def add_opt_out(engine: Engine, phone: str, at: datetime, source: str, detail: str = "") -> bool:
    """Record an opt-out; returns False when the number had already opted out."""
    with write(engine) as conn:
        return record_opt_out(conn, phone, at, source, detail)


def remove_opt_out(engine: Engine, phone: str) -> bool:
    table = SmsOptOut.__table__
    with write(engine) as conn:
        return bool(conn.execute(delete(table).where(table.c.phone == phone)).rowcount)


def opted_out(engine: Engine, phones: Iterable[str]) -> set[str]:
    table = SmsOptOut.__table__
    wanted = list(set(phones))
    found: set[str] = set()
    with engine.connect() as conn:
        for batch in chunks(wanted, 5000):
            found.update(conn.scalars(select(table.c.phone).where(table.c.phone.in_(batch))))
    return found


def list_opt_outs(engine: Engine) -> list[SmsOptOut]:
    table = SmsOptOut.__table__
    with engine.connect() as conn:
        return [SmsOptOut(**r._mapping) for r in conn.execute(select(table).order_by(table.c.at))]
