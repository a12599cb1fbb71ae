"""Reading the CSV files people prepare in spreadsheets (UTF-8, with or without a BOM)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from coso.errors import InputError


def csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped values) for each row; the named columns must exist."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError as exc:
        raise InputError("file", str(path), "not found") from exc
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                "columns",
                reader.fieldnames,
                f"missing {missing}; expected {list(columns)}",
                source=str(path),
            )
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}
