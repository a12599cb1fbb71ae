"""Reading the CSV files people prepare in spreadsheets: UTF-8 with or without a BOM, or
UTF-16/UTF-32 with their BOM (Excel's "Unicode text"), decoded to NFC. Anything else is
refused naming the file and the line, with how to save it; so is a cell too long to be real."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from coso.errors import InputError
from coso.names import nfc

# Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SAVE_AS_UTF8 = 'hãy lưu lại tệp dưới dạng "CSV UTF-8" (Excel: Lưu thành → CSV UTF-8)'


def decode_text(data: bytes, source: str) -> str:
    """The text of a file's bytes, by its BOM (UTF-8 without one), in NFC."""
    encoding, start = "utf-8", 0
    for bom, name in BOMS:
        if data.startswith(bom):
            encoding, start = name, len(bom)
            break
    else:  # UTF-16 without a BOM: the header's ASCII letters each come with a zero byte
        head = data[:8]
        if len(head) == 8 and not any(head[0::2]) and all(head[1::2]):
            encoding = "utf-16-be"
        elif len(head) == 8 and all(head[0::2]) and not any(head[1::2]):
            encoding = "utf-16-le"
    body = data[start:]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = _line_of(body, exc.start, encoding)
        raise InputError(
            "file",
            source,
            f"dòng {line} không đọc được theo mã {encoding.upper()} "
            f"(tệp lưu bằng bảng mã khác, như Windows-1258 hay TCVN3?); {SAVE_AS_UTF8}",
            source=source,
            line=line,
        ) from exc
    return nfc(text)


def _line_of(data: bytes, offset: int, encoding: str) -> int:
    newline = "\n".encode(encoding)
    return data[:offset].count(newline) + 1


FOLDER = "là một thư mục, không phải một tệp"


def not_a_folder(path: Path, field: str = "file") -> Path:
    """`path`, unless it is a folder (a file that is missing is its reader's to name)."""
    if path.is_dir():
        raise InputError(field, str(path), FOLDER)
    return path


def read_text(path: Path) -> str:
    """A text file's content (decode_text); an error naming it when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("file", str(path), "not found") from exc
    except IsADirectoryError as exc:
        raise InputError("file", str(path), FOLDER) from exc
    except OSError as exc:
        raise InputError("file", str(path), f"không đọc được: {exc.strerror}") from exc
    return decode_text(data, str(path))


def csv_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each row; a malformed row raises an error naming its line."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            if "field larger than field limit" in str(exc):
                reason = (
                    f"dòng {line} có một ô dài hơn {csv.field_size_limit():,} ký tự: "
                    "không phải dữ liệu thật (tệp hỏng hoặc nhầm tệp?)"
                )
            else:
                reason = f"dòng {line} không đọc được như CSV: {exc}"
            raise InputError("file", str(path), reason, source=str(path), line=line) from exc
        yield reader.line_num, row


def csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped values) for each row; the named columns must exist."""
    lines = csv_lines(path)
    first = next(lines, None)
    fieldnames = [c.strip() for c in first[1]] if first else []
    missing = [c for c in columns if c not in fieldnames]
    if missing:
        raise InputError(
            "columns",
            fieldnames or None,
            f"missing {missing}; expected {list(columns)}",
            source=str(path),
        )
    for line, cells in lines:
        if not cells:
            continue  # a blank line, as csv.DictReader skips it
        row = dict(zip(fieldnames, cells, strict=False))
        yield line, {k: (row.get(k) or "").strip() for k in fieldnames if k}
