"""Reading and writing broadcast sessions, their exceptions and what is placed in them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from content.models import ContentItem
from coso.clock import as_utc, in_zone, local_text
from coso.config import Settings
from coso.durations import parse_duration
from coso.units import CURRENT_DATASET, AdminUnit, UnitTree, unit_names, unit_tree
from coso.weektimes import parse_clock, parse_weekdays
from schedules.models import Schedule
from schedules.session_queue import Booked, Load, programme_order
from schedules.sessions import (
    DEFAULT,
    BroadcastSession,
    DayChange,
    Instance,
    SessionDef,
    SessionException,
    SessionPlacement,
    UnitPlace,
    instances,
    scope,
)

BS = BroadcastSession.__table__
SE = SessionException.__table__
SP = SessionPlacement.__table__
S = Schedule.__table__
C = ContentItem.__table__


def config_defs(settings: Settings) -> list[SessionDef]:
    """The settings' default sessions, per kind of unit."""
    return [
        SessionDef(
            scope(DEFAULT, s.kind),
            s.name,
            parse_weekdays(s.weekdays),
            parse_clock(s.start),
            int(parse_duration(s.length).total_seconds() // 60),
        )
        for s in settings.sessions
    ]


def def_of(row: Any) -> SessionDef:
    return SessionDef(
        row.scope, row.name, frozenset(row.weekdays), parse_clock(row.start), row.minutes
    )


def change_of(row: Any) -> DayChange:
    return DayChange(
        day=row.day,
        kind=row.kind,
        scope=row.scope,
        session=row.session,
        start=parse_clock(row.start) if row.start else None,
        minutes=row.minutes,
        note=row.note,
    )


def stored_defs(conn: Connection) -> list[SessionDef]:
    return [def_of(r) for r in conn.execute(select(BS).order_by(BS.c.id))]


def stored_changes(conn: Connection) -> list[DayChange]:
    return [change_of(r) for r in conn.execute(select(SE).order_by(SE.c.day, SE.c.id))]


def all_defs(engine: Engine, settings: Settings) -> list[SessionDef]:
    with engine.connect() as conn:
        return stored_defs(conn) + config_defs(settings)


def all_changes(engine: Engine) -> list[DayChange]:
    with engine.connect() as conn:
        return stored_changes(conn)


@dataclass(frozen=True)
class GroupReach:
    """An endpoint group as sessions see it: the units it covers and its members' units."""

    name: str
    unit_codes: tuple[str, ...]
    member_units: frozenset[str]


def groups_by_unit(tree: UnitTree, groups: Iterable[GroupReach]) -> dict[str, set[str]]:
    """unit code → names of the groups it is in."""
    out: dict[str, set[str]] = defaultdict(set)
    for group in groups:
        covered = set(group.member_units)
        for code in group.unit_codes:
            try:
                covered |= tree.below(code)
            except ValueError:
                continue
        for unit in covered:
            out[unit].add(group.name)
    return out


def stored_groups(engine: Engine) -> list[GroupReach]:
    G, M, E = EndpointGroup.__table__, GroupMember.__table__, Endpoint.__table__
    with engine.connect() as conn:
        groups = conn.execute(select(G.c.id, G.c.name, G.c.unit_codes)).all()
        members: dict[int, set[str]] = defaultdict(set)
        for group_id, unit in conn.execute(
            select(M.c.group_id, E.c.unit_code).join(E, E.c.id == M.c.endpoint_id)
        ):
            if unit:
                members[group_id].add(unit)
    return [GroupReach(g.name, tuple(g.unit_codes or ()), frozenset(members[g.id])) for g in groups]


def unit_places(
    engine: Engine,
    codes: Iterable[str],
    *,
    tree: UnitTree | None = None,
    groups: Iterable[GroupReach] | None = None,
) -> dict[str, UnitPlace]:
    """Each unit's code, name, kind and groups."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    U = AdminUnit.__table__
    with engine.connect() as conn:
        rows = {
            r.code: r
            for r in conn.execute(
                select(U.c.code, U.c.name, U.c.kind).where(
                    U.c.dataset == CURRENT_DATASET, U.c.code.in_(wanted)
                )
            )
        }
    member_of = groups_by_unit(
        tree or unit_tree(engine), stored_groups(engine) if groups is None else groups
    )
    out = {}
    for code in wanted:
        row = rows.get(code)
        out[code] = UnitPlace(
            code,
            row.name if row is not None else code,
            row.kind if row is not None else "",
            frozenset(member_of.get(code, set())),
        )
    return out


def booked_load(
    engine: Engine,
    units: Iterable[str],
    lo: datetime,
    hi: datetime,
    *,
    without: Iterable[int] = (),
) -> Load:
    """What the units' sessions starting in [lo, hi] already hold: the placements of
    enabled schedules (but `without`), with their titles."""
    load = Load()
    codes = sorted(set(units))
    skip = set(without)
    if not codes:
        return load
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                SP.c.unit_code,
                SP.c.starts_at,
                SP.c.seconds,
                SP.c.schedule_id,
                S.c.priority,
                C.c.title,
            )
            .join(S, S.c.id == SP.c.schedule_id)
            .join(C, C.c.id == S.c.content_id)
            .where(
                SP.c.unit_code.in_(codes),
                SP.c.starts_at >= lo,
                SP.c.starts_at <= hi,
                S.c.enabled.is_(True),
            )
            .order_by(SP.c.starts_at, SP.c.schedule_id)
        ).all()
    for r in rows:
        if r.schedule_id in skip:
            continue
        load.items[(r.unit_code, as_utc(r.starts_at))].append(
            Booked(r.title, r.seconds, r.priority, r.schedule_id)
        )
    return load


def write_placements(
    conn: Connection, schedule_id: int, placed: Iterable[tuple[Instance, int]], now: datetime
) -> None:
    """Keep where a schedule's item went: (session instance, the item's seconds)."""
    rows = [
        {
            "schedule_id": schedule_id,
            "unit_code": inst.unit,
            "session": inst.name,
            "starts_at": inst.at,
            "minutes": inst.minutes,
            "seconds": seconds,
            "placed_at": now,
        }
        for inst, seconds in placed
    ]
    if rows:
        conn.execute(SP.insert(), rows)


def no_room_left(engine: Engine, schedule_id: int, now: datetime, tz: str) -> list[tuple[str, int]]:
    """The sessions to come that a (disabled) queued schedule's item no longer fits in,
    beside what enabled schedules hold there: (the session named, seconds left)."""
    with engine.connect() as conn:
        mine = conn.execute(
            select(SP).where(SP.c.schedule_id == schedule_id, SP.c.starts_at > now)
        ).all()
    if not mine:
        return []
    lo = min(as_utc(p.starts_at) for p in mine)
    hi = max(as_utc(p.starts_at) for p in mine)
    load = booked_load(engine, {p.unit_code for p in mine}, lo, hi, without={schedule_id})
    names = unit_names(engine, {p.unit_code for p in mine})
    full = []
    for p in mine:
        at = as_utc(p.starts_at)
        used = sum(b.seconds for b in load.items.get((p.unit_code, at), []))
        left = p.minutes * 60 - used
        if left < p.seconds:
            where = names.get(p.unit_code, p.unit_code)
            full.append((f"{p.session!r} {local_text(at, tz)} ở {where}", left))
    return full


def stored_placements(engine: Engine, schedule_id: int, tz: str) -> list[tuple[Instance, int]]:
    """Where a queued schedule's item went, as placed: (session instance, its seconds)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(SP).where(SP.c.schedule_id == schedule_id).order_by(SP.c.starts_at)
        ).all()
    out = []
    for r in rows:
        at = as_utc(r.starts_at)
        out.append(
            (Instance(r.unit_code, r.session, in_zone(at, tz).date(), at, r.minutes), r.seconds)
        )
    return out


def drop_future_placements(conn: Connection, schedule_id: int, after: datetime) -> None:
    conn.execute(delete(SP).where(SP.c.schedule_id == schedule_id, SP.c.starts_at > after))


def placed_units(engine: Engine, schedule_id: int) -> dict[datetime, set[str]]:
    """A queued schedule's sessions: start (UTC) → the units it was placed in there."""
    out: dict[datetime, set[str]] = defaultdict(set)
    with engine.connect() as conn:
        for unit, at in conn.execute(
            select(SP.c.unit_code, SP.c.starts_at).where(SP.c.schedule_id == schedule_id)
        ):
            out[as_utc(at)].add(unit)
    return out


def only_placed(
    targets: Sequence[tuple[int, str | None]], units: set[str]
) -> list[tuple[int, str | None]]:
    """The targets of one session of a queued schedule: those in the units placed there."""
    return [(eid, unit) for eid, unit in targets if unit in units]


@dataclass(frozen=True)
class Programme:
    """One unit's session on one day, with its items in playing order."""

    session: Instance
    place: UnitPlace
    items: tuple[Booked, ...]

    @property
    def used(self) -> int:
        return sum(b.seconds for b in self.items)

    @property
    def left(self) -> int:
        return self.session.seconds - self.used


def programmes(
    engine: Engine,
    settings: Settings,
    units: Iterable[str],
    first: date,
    last: date,
    tz: str,
    *,
    now: datetime | None = None,
) -> list[Programme]:
    """The units' sessions from `first` to `last` (local days), each with what is queued
    in it and the time left; sessions that ended before `now` are left out."""
    codes = sorted(set(units))
    places = unit_places(engine, codes)
    defs, changes = all_defs(engine, settings), all_changes(engine)
    found: list[Instance] = []
    for code in codes:
        found += instances(places[code], defs, changes, first, last, tz)
    if now is not None:
        found = [i for i in found if i.ends_at > now]
    if not found:
        return []
    lo = min(i.at for i in found)
    hi = max(i.at for i in found)
    load = booked_load(engine, codes, lo, hi)
    return [
        Programme(i, places[i.unit], tuple(programme_order(load.items.get((i.unit, i.at), []))))
        for i in sorted(found, key=lambda i: (i.at, i.unit))
    ]


def range_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """Generous UTC bounds of local days first..last in any zone."""
    lo = datetime.combine(first, time(), UTC) - timedelta(days=1)
    hi = datetime.combine(last, time(), UTC) + timedelta(days=2)
    return lo, hi
