"""Broadcast sessions (buổi phát): the fixed times a commune's station is on air, as a
programme of items, and the days they change.

A session belongs to one unit, to the units of an endpoint group, or to a kind of unit
(phường, xã, đặc khu); a unit has the sessions of its most specific scope: its own, else
its groups', else those given for its kind (in a plan file or the console), else the
defaults for its kind in the settings. Exceptions cancel a day's sessions (a holiday) or add
one. Times are wall times in the zone given; instances are returned in UTC."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel, UniqueConstraint

from coso.clock import zone as zone_info

CANCEL, ADD = "cancel", "add"
UNIT, GROUP, KIND, DEFAULT = "unit", "group", "kind", "default"
# Most specific first: a unit has the sessions of the first level that gives it any.
LEVELS = (UNIT, GROUP, KIND, DEFAULT)


class BroadcastSession(SQLModel, table=True):
    __tablename__ = "broadcast_session"
    __table_args__ = (UniqueConstraint("scope", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str  # "unit:<code>", "group:<name>" or "kind:<kind>"
    name: str  # "Sáng"
    weekdays: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    start: str  # "05:00", wall time in the zone of the plans that use it
    minutes: int
    plan_id: int | None = Field(default=None, foreign_key="plan.id")  # None: the console
    created_at: datetime


class SessionException(SQLModel, table=True):
    """A day a session is cancelled (a holiday: every session) or one is added."""

    __tablename__ = "session_exception"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    scope: str = ""  # "": everywhere
    session: str = ""  # "": every session of the day (cancel)
    kind: str = CANCEL
    start: str | None = None  # an added session's start and length
    minutes: int | None = None
    note: str = ""
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    created_at: datetime


class SessionPlacement(SQLModel, table=True):
    """A queued schedule's item placed in one unit's session on one day, at planning."""

    __tablename__ = "session_placement"
    __table_args__ = (UniqueConstraint("schedule_id", "unit_code", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    unit_code: str = Field(index=True)
    session: str
    starts_at: datetime = Field(index=True)  # the session's start, UTC
    minutes: int  # the session's length
    seconds: int  # the item's length
    placed_at: datetime


@dataclass(frozen=True)
class SessionDef:
    scope: str
    name: str
    weekdays: frozenset[int]
    start: time
    minutes: int

    @property
    def level(self) -> str:
        return self.scope.split(":", 1)[0]


@dataclass(frozen=True)
class DayChange:
    day: date
    kind: str  # cancel | add
    scope: str = ""
    session: str = ""
    start: time | None = None
    minutes: int | None = None
    note: str = ""


@dataclass(frozen=True)
class UnitPlace:
    """What decides a unit's sessions: its code, its kind and the groups it is in."""

    code: str
    name: str = ""
    kind: str = ""
    groups: frozenset[str] = frozenset()

    def scopes(self) -> dict[str, set[str]]:
        return {
            UNIT: {scope(UNIT, self.code)},
            GROUP: {scope(GROUP, g) for g in self.groups},
            KIND: {scope(KIND, self.kind)},
            DEFAULT: {scope(DEFAULT, self.kind)},
        }

    def covered_by(self, where: str) -> bool:
        """Does an exception for `where` ("" everywhere) apply here?"""
        if not where:
            return True
        return any(where in found for found in self.scopes().values())


@dataclass(frozen=True)
class Instance:
    """One session on one day in one unit."""

    unit: str
    name: str
    day: date  # local
    at: datetime  # UTC
    minutes: int

    @property
    def seconds(self) -> int:
        return self.minutes * 60

    @property
    def ends_at(self) -> datetime:
        return self.at + timedelta(minutes=self.minutes)


def scope(level: str, value: str) -> str:
    return f"{level}:{value}"


def sessions_for(unit: UnitPlace, defs: Iterable[SessionDef]) -> list[SessionDef]:
    """The unit's sessions: those of its most specific level that gives any."""
    all_defs = list(defs)
    scopes = unit.scopes()
    for level in LEVELS:
        found = [d for d in all_defs if d.level == level and d.scope in scopes[level]]
        if found:
            return sorted(found, key=lambda d: (d.start, d.name))
    return []


def overlap(a: SessionDef, b: SessionDef) -> bool:
    """Do two sessions of one place share air time on a weekday they both have?"""
    if not a.weekdays & b.weekdays:
        return False
    a0 = a.start.hour * 60 + a.start.minute
    b0 = b.start.hour * 60 + b.start.minute
    return a0 < b0 + b.minutes and b0 < a0 + a.minutes


def to_utc(day: date, at: time, tz: str) -> datetime:
    """A local wall time on a day → UTC (a time skipped by a clock change reads as the
    offset before it, as schedules' times do)."""
    return datetime.combine(day, at, zone_info(tz)).astimezone(UTC)


def instances(
    unit: UnitPlace,
    defs: Iterable[SessionDef],
    changes: Iterable[DayChange],
    first: date,
    last: date,
    tz: str,
) -> list[Instance]:
    """Every session of `unit` from `first` to `last` (local days, inclusive), with the
    exceptions applied, in time order."""
    own = sessions_for(unit, defs)
    by_day: dict[date, list[DayChange]] = {}
    for change in changes:
        if first <= change.day <= last and unit.covered_by(change.scope):
            by_day.setdefault(change.day, []).append(change)
    out: list[Instance] = []
    day = first
    while day <= last:
        today = by_day.get(day, [])
        cancelled = {c.session for c in today if c.kind == CANCEL}
        taken: set[str] = set()
        starts: set[datetime] = set()  # one session per instant: the first given
        for d in own:
            at = to_utc(day, d.start, tz)
            if day.isoweekday() in d.weekdays and not cancelled & {"", d.name} and at not in starts:
                out.append(Instance(unit.code, d.name, day, at, d.minutes))
                taken.add(d.name)
                starts.add(at)
        for c in today:
            if c.kind != ADD or c.start is None or not c.minutes or c.session in taken:
                continue
            at = to_utc(day, c.start, tz)
            if at not in starts:
                out.append(Instance(unit.code, c.session, day, at, c.minutes))
                taken.add(c.session)
                starts.add(at)
        day += timedelta(days=1)
    return sorted(out, key=lambda i: (i.at, i.name))
