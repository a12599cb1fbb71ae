"""Administrative units as dated data, the mapping from pre-2025 codes, and organisations."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Field, SQLModel, UniqueConstraint
from unidecode import unidecode

from coso.csvfile import csv_rows
from coso.db import chunks, insert_ignoring_duplicates, write
from coso.errors import InputError
from coso.names import check_name

CURRENT_DATASET = "2025"
LEGACY_DATASET = "pre-2025"
REFORM_DATE = date(2025, 7, 1)


class AdminUnit(SQLModel, table=True):
    """A province or commune-level unit of one dataset version (GSO codes, zero-padded)."""

    __tablename__ = "admin_unit"
    __table_args__ = (UniqueConstraint("dataset", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset: str = Field(index=True)
    code: str = Field(index=True)
    name: str
    kind: str  # tỉnh, thành phố trung ương, huyện, xã, phường, đặc khu, ...
    level: int  # 1 province, 2 district (legacy only), 3 commune
    parent_code: str | None = Field(default=None, index=True)
    valid_from: date | None = None
    valid_to: date | None = None


class UnitMapping(SQLModel, table=True):
    """A legacy unit maps to one or more current units (a commune may have been split)."""

    __tablename__ = "unit_mapping"

    old_code: str = Field(primary_key=True)
    new_code: str = Field(primary_key=True)


class Organisation(SQLModel, table=True):
    """Owns schedules: a district culture centre, a commune people's committee, ..."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    kind: str = "agency"
    unit_code: str | None = None


def province_code(code: int) -> str:
    return f"{code:02d}"


def commune_code(code: int) -> str:
    return f"{code:05d}"


def current_unit_rows() -> list[dict[str, object]]:
    """The 34 provinces and 3,321 communes shipped by the vietnam-provinces package."""
    import vietnam_provinces

    data = json.loads(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH.read_text(encoding="utf-8"))
    rows: list[dict[str, object]] = []
    for province in data:
        pcode = province_code(province["code"])
        rows.append(_unit(pcode, province["name"], province["division_type"], 1, None))
        for ward in province["wards"]:
            rows.append(
                _unit(commune_code(ward["code"]), ward["name"], ward["division_type"], 3, pcode)
            )
    return rows


def _unit(code: str, name: str, kind: str, level: int, parent: str | None) -> dict[str, object]:
    return {
        "dataset": CURRENT_DATASET,
        "code": code,
        "name": name,
        "kind": kind,
        "level": level,
        "parent_code": parent,
        "valid_from": REFORM_DATE,
        "valid_to": None,
    }


def load_current_units(engine: Engine) -> int:
    """Load (idempotently) the current units; returns how many the dataset holds."""
    rows = current_unit_rows()
    table = AdminUnit.__table__
    with write(engine) as conn:
        for batch in chunks(rows, 1000):
            conn.execute(insert_ignoring_duplicates(conn, table), list(batch))
    return len(rows)


LEGACY_COLUMNS = ("code", "name", "kind", "level", "parent_code", "new_codes")


def import_legacy_units(engine: Engine, path: Path) -> int:
    """Import pre-2025 units from CSV with columns code,name,kind,level,parent_code,new_codes.

    new_codes lists the current codes (separated by ';') a unit became. The whole file is
    checked first; one bad row and nothing is imported.
    """
    known = current_codes(engine)
    units: list[dict[str, object]] = []
    mappings: list[dict[str, str]] = []
    for line, row in csv_rows(path, LEGACY_COLUMNS):
        code = check_name("code", row["code"], source=str(path), line=line)
        name = check_name("name", row["name"], source=str(path), line=line)
        if row["level"] not in ("1", "2", "3"):
            raise InputError(
                "level", row["level"], "must be 1, 2 or 3", source=str(path), line=line
            )
        units.append(
            {
                "dataset": LEGACY_DATASET,
                "code": code,
                "name": name,
                "kind": row["kind"],
                "level": int(row["level"]),
                "parent_code": row["parent_code"] or None,
                "valid_from": None,
                "valid_to": REFORM_DATE,
            }
        )
        for new in filter(None, (c.strip() for c in row["new_codes"].split(";"))):
            if new not in known:
                raise InputError(
                    "new_codes", new, "is not a current unit code", source=str(path), line=line
                )
            mappings.append({"old_code": code, "new_code": new})
    with write(engine) as conn:
        conn.execute(insert_ignoring_duplicates(conn, AdminUnit.__table__), units)
        if mappings:
            conn.execute(insert_ignoring_duplicates(conn, UnitMapping.__table__), mappings)
    return len(units)


def current_codes(engine: Engine) -> set[str]:
    table = AdminUnit.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.code).where(table.c.dataset == CURRENT_DATASET))
        return {r[0] for r in rows}


@dataclass(frozen=True)
class UnitTree:
    """The current units and the legacy mapping, read once to answer many codes."""

    children: dict[str | None, list[str]]
    current: frozenset[str]
    legacy: dict[str, set[str]]

    def below(self, code: str) -> set[str]:
        """The code and every current unit below it; a legacy code stands for what it became."""
        if code in self.current:
            start = {code}
        elif code in self.legacy:
            start = set(self.legacy[code])
        else:
            raise InputError("unit", code, "is not a known administrative unit code")
        found, frontier = set(start), list(start)
        while frontier:
            kids = self.children.get(frontier.pop(), [])
            found.update(kids)
            frontier.extend(kids)
        return found

    def current_for(self, code: str) -> str:
        """The one current unit a code stands for: itself, or the unit a legacy code became."""
        units = self.below(code)
        if code in units:
            return code
        if len(units) != 1:
            raise InputError(
                "unit", code, f"legacy unit became several current units {sorted(units)}; name one"
            )
        return next(iter(units))


def unit_tree(engine: Engine) -> UnitTree:
    unit, mapping = AdminUnit.__table__, UnitMapping.__table__
    children: dict[str | None, list[str]] = {}
    legacy: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for code, parent in conn.execute(
            select(unit.c.code, unit.c.parent_code).where(unit.c.dataset == CURRENT_DATASET)
        ):
            children.setdefault(parent, []).append(code)
        for old, new in conn.execute(select(mapping.c.old_code, mapping.c.new_code)):
            legacy.setdefault(old, set()).add(new)
    current = frozenset(c for kids in children.values() for c in kids)
    return UnitTree(children, current, legacy)


def shipped_unit_tree() -> UnitTree:
    """The current units as the vietnam-provinces package ships them, without a database
    (to check a file before any database exists)."""
    children: dict[str | None, list[str]] = {}
    for row in current_unit_rows():
        parent = row["parent_code"]
        children.setdefault(parent if isinstance(parent, str) else None, []).append(
            str(row["code"])
        )
    current = frozenset(c for kids in children.values() for c in kids)
    return UnitTree(children, current, {})


def resolve_unit_codes(engine: Engine, codes: Iterable[str]) -> dict[str, set[str]]:
    """Each code → itself and every current unit below it (see UnitTree.below)."""
    tree = unit_tree(engine)
    return {code: tree.below(code) for code in codes}


def unit_names(engine: Engine, codes: Iterable[str]) -> dict[str, str]:
    """Units' names by code: today's name, else (a code the 2025 reform retired) the name
    it had before."""
    wanted = sorted(set(codes))
    table = AdminUnit.__table__
    names: dict[str, str] = {}
    with engine.connect() as conn:
        for part in chunks(wanted, 5000):
            rows = conn.execute(
                select(table.c.code, table.c.name, table.c.dataset).where(table.c.code.in_(part))
            )
            for code, name, dataset in rows:
                if code not in names or dataset == CURRENT_DATASET:
                    names[code] = name
    return names


def count_units(engine: Engine) -> dict[str, int]:
    table = AdminUnit.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.dataset, func.count()).group_by(table.c.dataset)).all()
    return {dataset: n for dataset, n in rows}


LEVEL_WORDS = {
    1: ("province", "provinces"),
    2: ("district", "districts"),
    3: ("commune", "communes"),
}


def describe_unit_counts(engine: Engine) -> list[str]:
    """How many units each dataset holds, by level, in words, a line per dataset:
    'administrative units: 34 provinces, 3,321 communes (current, since 01/07/2025)'."""
    table = AdminUnit.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.dataset, table.c.level, func.count())
            .group_by(table.c.dataset, table.c.level)
            .order_by(table.c.dataset, table.c.level)
        ).all()
    by_dataset: dict[str, list[str]] = {}
    for dataset, level, n in rows:
        one, many = LEVEL_WORDS.get(level, (f"level-{level} unit", f"level-{level} units"))
        by_dataset.setdefault(dataset, []).append(f"{n:,} {one if n == 1 else many}")
    lines = []
    if CURRENT_DATASET in by_dataset:
        counts = ", ".join(by_dataset.pop(CURRENT_DATASET))
        lines.append(f"administrative units: {counts} (current, since {REFORM_DATE:%d/%m/%Y})")
    if LEGACY_DATASET in by_dataset:
        counts = ", ".join(by_dataset.pop(LEGACY_DATASET))
        lines.append(f"pre-2025 units: {counts} (each mapped to the current units it became)")
    lines += [f"units of dataset {name}: {', '.join(c)}" for name, c in by_dataset.items()]
    return lines or ["administrative units: none"]


# Words a unit's name may start with, left out when names are compared ("Xã Thất Khê" is
# found as "Thất Khê", "Tỉnh Lạng Sơn" as the province "Lạng Sơn").
NAME_PREFIXES = (
    "thành phố ",
    "thị trấn ",
    "thị xã ",
    "đặc khu ",
    "phường ",
    "huyện ",
    "quận ",
    "tỉnh ",
    "xã ",
)
SHOWN_CANDIDATES = 20


@dataclass(frozen=True)
class FoundUnit:
    """A unit as `find_unit` found it, with the name of its parent (a commune's province)."""

    code: str
    name: str
    kind: str
    dataset: str
    parent_name: str

    def label(self) -> str:
        where = f", {self.parent_name}" if self.parent_name else ""
        old = ", pre-2025" if self.dataset == LEGACY_DATASET else ""
        return f"{self.code}  {self.name} ({self.kind}{where}{old})"


def _folded(text: str, bare: bool = True) -> str:
    """Lower case, one space between words, composed accents (NFC); `bare`: without the kind
    word it starts with."""
    text = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    for prefix in NAME_PREFIXES if bare else ():
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def find_unit(engine: Engine, text: str) -> FoundUnit:
    """The unit a user means by `text`: a code (current or pre-2025) as it is, else a name,
    matched case-insensitively, with or without diacritics, with or without its kind word
    ("Lạng Sơn", "lang son", "xã thất khê"). Current units are preferred to pre-2025 ones.
    An unknown value, or a name several units share, is an InputError naming it (and, for
    a shared name, each unit that has it)."""
    table = AdminUnit.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                table.c.code, table.c.name, table.c.kind, table.c.dataset, table.c.parent_code
            ).order_by(table.c.dataset, table.c.code)
        ).all()
    names = {(r.dataset, r.code): r.name for r in rows}

    def found(r: Any) -> FoundUnit:
        return FoundUnit(
            r.code, r.name, r.kind, r.dataset, names.get((r.dataset, r.parent_code), "")
        )

    wanted = text.strip()
    for dataset in (CURRENT_DATASET, LEGACY_DATASET):
        for r in rows:
            if r.dataset == dataset and r.code == wanted:
                return found(r)
    if not wanted or wanted.isdigit():
        raise InputError("unit", text, "is not a known administrative unit code")
    with_marks = unidecode(wanted) != wanted  # typed with diacritics: they decide
    tiers: list[tuple[bool, Callable[[str, str], bool]]] = [
        (False, lambda name, q: name == q),  # the whole name: "Xã Tân Tiến"
        (True, lambda name, q: name == q),  # without its kind word: "Tân Tiến"
        (True, lambda name, q: f" {q} " in f" {name} "),  # some words of it
    ]
    matches: list[Any] = []
    for bare, same in tiers:
        query = _folded(wanted, bare)
        for dataset in (CURRENT_DATASET, LEGACY_DATASET):
            units = [(r, _folded(r.name, bare)) for r in rows if r.dataset == dataset]
            matches = [(r, n) for r, n in units if same(unidecode(n), unidecode(query))]
            if with_marks:
                matches = [(r, n) for r, n in matches if same(n, query)] or matches
            if matches:
                break
        if matches:
            break
    if not matches:
        raise InputError("unit", text, "no administrative unit has this code or name")
    if len(matches) == 1:
        return found(matches[0][0])
    listed = [found(r).label() for r, _ in matches[:SHOWN_CANDIDATES]]
    if len(matches) > SHOWN_CANDIDATES:
        listed.append(f"… and {len(matches) - SHOWN_CANDIDATES} more")
    raise InputError(
        "unit",
        text,
        f"{len(matches)} units have this name; give the code of one:\n  " + "\n  ".join(listed),
    )
