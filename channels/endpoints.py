"""Endpoints (a player, a phone number, an LED board, a web site) and groups of them."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import JSON, Column, Engine, Row, func, or_, select
from sqlmodel import Field, SQLModel, UniqueConstraint

from channels import registry
from coso.csvfile import csv_rows
from coso.db import chunks, insert_ignoring_duplicates, write
from coso.errors import InputError
from coso.names import SHOWN_LENGTH, check_name, length_problem, shown
from coso.units import UnitTree, resolve_unit_codes, unit_tree


class Endpoint(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    address: str
    name: str = ""
    unit_code: str | None = Field(default=None, index=True)
    enabled: bool = True
    # A test endpoint (a player on the operator's desk, a staff phone): the only ones a
    # drill reaches.
    test: bool = False
    created_at: datetime
    # WGS 84, where the endpoint stands (a loudspeaker cluster, a board): CAP circles and
    # polygons reach the endpoints inside them.
    latitude: float | None = None
    longitude: float | None = None


class EndpointGroup(SQLModel, table=True):
    """Named selection: explicit members plus every endpoint in the listed units."""

    __tablename__ = "endpoint_group"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    channel: str
    unit_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = ""


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"

    group_id: int = Field(foreign_key="endpoint_group.id", primary_key=True)
    endpoint_id: int = Field(foreign_key="endpoint.id", primary_key=True)


def check_channel(field: str, channel: str) -> str:
    """A registered channel's name, or an error listing them."""
    registry.get(channel, field)
    return channel


def check_address(field: str, channel: str, address: str) -> str:
    """The address as the channel keeps it (SMS: E.164), or an error naming it."""
    plugin = registry.get(channel, "channel")
    if plugin.address is None:
        return address
    try:
        return plugin.address(address)
    except ValueError as exc:
        raise InputError(field, address, str(exc)) from exc


def add_endpoints(engine: Engine, rows: Sequence[dict[str, object]], now: datetime) -> int:
    """Add endpoints (channel, address, name, unit_code); existing ones are left as they are.
    Returns how many were new."""
    table = Endpoint.__table__
    stamped = [
        {
            "enabled": True,
            "test": False,
            "name": "",
            "unit_code": None,
            "latitude": None,
            "longitude": None,
            **r,
            "created_at": now,
        }
        for r in rows
    ]
    counted = select(func.count()).select_from(table)
    with write(engine) as conn:
        before = conn.scalar(counted) or 0
        for batch in chunks(stamped, 2000):
            conn.execute(insert_ignoring_duplicates(conn, table), list(batch))
        return (conn.scalar(counted) or 0) - before


ENDPOINT_COLUMNS = ("channel", "address", "name", "unit")
# Optional columns: where the endpoint stands (WGS 84), for CAP circles and polygons.
PLACE_COLUMNS = ("latitude", "longitude")


def read_place(record: dict[str, str]) -> dict[str, float | None]:
    """latitude and longitude of a row: both or neither; each a number in its range."""
    texts = {c: record.get(c, "") for c in PLACE_COLUMNS}
    if not any(texts.values()):
        return {"latitude": None, "longitude": None}
    place: dict[str, float | None] = {}
    for column, (low, high) in zip(PLACE_COLUMNS, ((-90, 90), (-180, 180)), strict=True):
        text = texts[column].replace(",", ".")
        try:
            value = float(text)
        except ValueError as exc:
            raise InputError(column, texts[column], "cần một số (độ thập phân, WGS 84)") from exc
        if not (low <= value <= high):
            raise InputError(column, texts[column], f"phải từ {low} đến {high}")
        place[column] = value
    return place


def read_endpoints_csv(engine: Engine, path: Path) -> list[dict[str, object]]:
    """Rows of a CSV with columns channel,address,name,unit (and, optionally, latitude and
    longitude), checked whole: the first bad row raises an error naming its line, field
    and value."""
    rows: list[dict[str, object]] = []
    seen: dict[tuple[str, str], int] = {}
    units = unit_tree(engine)
    for line, record in csv_rows(path, ENDPOINT_COLUMNS):
        channel, address, unit = record["channel"], record["address"], record["unit"] or None
        try:
            check_channel("channel", channel)
            if not address:
                raise InputError("address", address, "is empty")
            too_long = length_problem(address, SHOWN_LENGTH)
            if too_long:
                raise InputError("address", address, too_long)
            address = check_address("address", channel, address)
            if (channel, address) in seen:
                raise InputError("address", address, f"repeats line {seen[channel, address]}")
            if unit is not None:
                unit = units.current_for(unit)
            name = check_name("name", record["name"], allow_empty=True)
            place = read_place(record)
        except InputError as exc:
            raise InputError(
                exc.field, shown(exc.value), exc.reason, source=str(path), line=line
            ) from exc
        seen[channel, address] = line
        row: dict[str, object] = {
            "channel": channel,
            "address": address,
            "name": name,
            "unit_code": unit,
        }
        if place["latitude"] is not None:
            row |= place
        rows.append(row)
    return rows


def list_endpoints(
    engine: Engine, channel: str | None, unit: str | None, limit: int
) -> list[Row[Any]]:
    table = Endpoint.__table__
    query = select(table).order_by(table.c.channel, table.c.address).limit(limit)
    if channel:
        query = query.where(table.c.channel == channel)
    if unit:
        query = query.where(table.c.unit_code.in_(resolve_unit_codes(engine, [unit])[unit]))
    with engine.connect() as conn:
        return list(conn.execute(query).all())


class Targets(Sequence[tuple[int, str | None]]):
    """The endpoints a schedule reaches, in the order of their ids: a sequence of
    (endpoint id, its unit's code). Held as an array of ids beside a list of unit codes
    (one string per unit, shared): 16 bytes an endpoint where a list of pairs takes about
    100, which for a province's 50,000 players is 0.8 MB instead of 5 MB, built each time
    a schedule fires or a programme is compared. A slice is Targets again."""

    __slots__ = ("ids", "units")

    def __init__(self, ids: array[int] | None = None, units: list[str | None] | None = None):
        self.ids: array[int] = array("q") if ids is None else ids
        self.units: list[str | None] = [] if units is None else units

    def append(self, endpoint_id: int, unit: str | None) -> None:
        self.ids.append(endpoint_id)
        self.units.append(None if unit is None else sys.intern(unit))

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> tuple[int, str | None]: ...
    @overload
    def __getitem__(self, i: slice) -> Targets: ...
    def __getitem__(self, i: int | slice) -> tuple[int, str | None] | Targets:
        if isinstance(i, slice):
            return Targets(self.ids[i], self.units[i])
        return self.ids[i], self.units[i]

    def __iter__(self) -> Iterator[tuple[int, str | None]]:
        return zip(self.ids, self.units, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # changes as it is built, like a list

    def __repr__(self) -> str:
        return f"Targets({list(self)!r})"


def resolve_targets(
    engine: Engine, channel: str, targets: dict[str, list[str]], tree: UnitTree | None = None
) -> Targets:
    """Targets {endpoints: [address], groups: [name], units: [code]} → [(endpoint id, unit)]
    (`Targets`), enabled endpoints of `channel` only, in the order of their ids.

    Evaluated when an occurrence fires, so endpoints added to a unit later are included.
    `tree`: the unit tree already read, by a caller resolving many targets at once. The
    database picks the endpoints: a province's 50,000 players come back as 50,000 pairs,
    not as every endpoint of the channel with its address to be sorted through here.
    """
    endpoint, group_t, member = (
        Endpoint.__table__,
        EndpointGroup.__table__,
        GroupMember.__table__,
    )
    with engine.connect() as conn:
        unit_codes = set(targets.get("units", []))
        group_ids: list[int] = []
        for name in targets.get("groups", []):
            group = conn.execute(select(group_t).where(group_t.c.name == name)).first()
            if group is None:
                continue
            unit_codes.update(group.unit_codes or [])
            group_ids.append(group.id)
        covered: set[str] = set()
        if unit_codes:
            tree = tree if tree is not None else unit_tree(engine)
            for code in unit_codes:
                covered |= tree.below(code)
        chosen: list[Any] = []
        if group_ids:
            members = select(member.c.endpoint_id).where(member.c.group_id.in_(group_ids))
            chosen.append(endpoint.c.id.in_(members))
        if covered:  # current units only: a few thousand codes at most, the whole country
            chosen.append(endpoint.c.unit_code.in_(sorted(covered)))
        enabled = select(endpoint.c.id, endpoint.c.unit_code).where(
            endpoint.c.channel == channel, endpoint.c.enabled.is_(True)
        )
        addresses = list(targets.get("endpoints", []))
        if not addresses:
            found = Targets()
            if not chosen:
                return found
            for eid, unit in conn.execute(enabled.where(or_(*chosen)).order_by(endpoint.c.id)):
                found.append(eid, unit)
            return found
        picked: dict[int, str | None] = {}
        wheres = [or_(*chosen)] if chosen else []
        # A list of any length, in statements of a bounded size.
        wheres += [endpoint.c.address.in_(part) for part in chunks(addresses, 5000)]
        for where in wheres:
            for eid, unit in conn.execute(enabled.where(where)):
                picked[eid] = unit
        found = Targets()
        for eid in sorted(picked):
            found.append(eid, picked[eid])
        return found


def targeted_units(
    engine: Engine, tree: UnitTree, channel: str, targets: dict[str, list[str]]
) -> set[str]:
    """The units of the endpoints `resolve_targets` finds for `targets`, asked of the
    database in one query instead of listing every endpoint of the channel."""
    endpoint, member = Endpoint.__table__, GroupMember.__table__
    units = set(targets.get("units", []))
    with engine.connect() as conn:
        members: list[int] = []
        for name in targets.get("groups", []):
            group = conn.execute(
                select(EndpointGroup.__table__).where(EndpointGroup.__table__.c.name == name)
            ).first()
            if group is None:
                continue
            units.update(group.unit_codes or [])
            members += conn.scalars(
                select(member.c.endpoint_id).where(member.c.group_id == group.id)
            )
        covered: set[str] = set()
        for code in units:
            covered |= tree.below(code)
        chosen = or_(
            endpoint.c.unit_code.in_(sorted(covered)),
            endpoint.c.address.in_(targets.get("endpoints", [])),
            endpoint.c.id.in_(members),
        )
        return set(
            conn.scalars(
                select(endpoint.c.unit_code)
                .where(endpoint.c.channel == channel, endpoint.c.enabled.is_(True), chosen)
                .distinct()
            )
        ) - {None}


def group_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(EndpointGroup.__table__.c.name)))


def endpoint_addresses(engine: Engine, channel: str, addresses: Iterable[str]) -> set[str]:
    wanted = list(addresses)
    table = Endpoint.__table__
    with engine.connect() as conn:
        return set(
            conn.scalars(
                select(table.c.address).where(
                    table.c.channel == channel, table.c.address.in_(wanted)
                )
            )
        )


def mark_test(engine: Engine, channel: str, addresses: Sequence[str], test: bool) -> int:
    """Mark endpoints as test endpoints (or not); an address the channel does not have is
    an error naming it, and nothing changes."""
    check_channel("channel", channel)
    table = Endpoint.__table__
    wanted = [check_address("address", channel, a) for a in addresses]
    if not wanted:
        raise InputError("address", "", "name at least one endpoint")
    known = endpoint_addresses(engine, channel, wanted)
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise InputError("address", unknown[0], f"no {channel} endpoint has this address")
    with write(engine) as conn:
        return conn.execute(
            table.update()
            .where(table.c.channel == channel, table.c.address.in_(wanted))
            .values(test=test)
        ).rowcount


def test_addresses(engine: Engine, channel: str, endpoint_ids: Iterable[int]) -> list[str]:
    """The addresses of the test endpoints among `endpoint_ids` (a drill's targets)."""
    table = Endpoint.__table__
    ids = sorted(set(endpoint_ids))
    found: list[str] = []
    with engine.connect() as conn:
        for batch in chunks(ids, 5000):
            found += conn.scalars(
                select(table.c.address).where(
                    table.c.channel == channel, table.c.test.is_(True), table.c.id.in_(batch)
                )
            )
    return sorted(found)
