"""The running order of a commune's slot: priority items go out before normal ones, and
when two or more priority items share a slot in one commune (a clash), they play in the
order the commune's operator sets, else in the order they were queued (schedule id).

An order is kept per commune and slot (its instant in UTC), as a list of schedule ids; a
schedule it does not name comes after those it does, in queue order. Every channel whose
items at one place play one after another (loudspeakers, a station) follows it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import JSON, Column, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, UniqueConstraint

from channels.states import PRIORITY
from coso.clock import as_utc
from coso.db import write
from coso.errors import InputError


class RunningOrder(SQLModel, table=True):
    __tablename__ = "running_order"
    __table_args__ = (UniqueConstraint("unit_code", "slot_utc"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_code: str = Field(index=True)
    slot_utc: str  # the slot's instant: slot_key(at)
    schedule_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class SlotItem:
    """One schedule's item in a commune's slot."""

    unit_code: str
    at: datetime  # UTC
    schedule_id: int
    priority: str
    title: str
    channel: str


@dataclass(frozen=True)
class Clash:
    """Priority items sharing a commune's slot on one channel, in the order they will play."""

    unit_code: str
    at: datetime
    channel: str
    items: tuple[SlotItem, ...]

    @property
    def schedule_ids(self) -> list[int]:
        return [i.schedule_id for i in self.items]


def slot_key(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="seconds")


def position(schedule_id: int, stored: Sequence[int]) -> int:
    """Where a schedule's item goes among a slot's items of its priority: as the operator
    placed it, else after those placed, in queue order."""
    if schedule_id in stored:
        return stored.index(schedule_id)
    return len(stored) + schedule_id


def clashes(items: Iterable[SlotItem], orders: Mapping[tuple[str, str], list[int]]) -> list[Clash]:
    """Each commune slot with two or more priority schedules on one channel (its loudspeakers,
    its station), ordered as they will play. `orders`: (unit, slot key) → schedule ids."""
    groups: dict[tuple[str, str, str], dict[int, SlotItem]] = defaultdict(dict)
    for item in items:
        if item.priority == PRIORITY:
            key = (item.unit_code, slot_key(item.at), item.channel)
            groups[key].setdefault(item.schedule_id, item)
    found = []
    for (unit, key, channel), by_schedule in groups.items():
        if len(by_schedule) < 2:
            continue
        stored = orders.get((unit, key), [])
        ordered = sorted(by_schedule.values(), key=lambda i: position(i.schedule_id, stored))
        found.append(Clash(unit, as_utc(ordered[0].at), channel, tuple(ordered)))
    return sorted(found, key=lambda c: (c.at, c.unit_code, c.channel))


def moved_up(stored: Sequence[int], clash: Sequence[int], schedule_id: int) -> list[int]:
    """The slot's order after `schedule_id` moves one place up among `clash` (the items of
    one channel, in their order): `stored` keeps the others where they were."""
    ids = list(clash)
    if schedule_id not in ids:
        raise InputError("schedule_id", str(schedule_id), "không có trong giờ phát này")
    i = ids.index(schedule_id)
    if i > 0:
        ids[i - 1], ids[i] = ids[i], ids[i - 1]
    others = [s for s in stored if s not in ids]
    return ids + others


def load_orders(
    engine: Engine, units: Iterable[str], lo: datetime, hi: datetime
) -> dict[tuple[str, str], list[int]]:
    """(unit, slot key) → schedule ids, for the communes' slots in [lo, hi)."""
    R = RunningOrder.__table__
    codes = sorted(set(units))
    if not codes:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.c.unit_code, R.c.slot_utc, R.c.schedule_ids).where(
                R.c.unit_code.in_(codes),
                R.c.slot_utc >= slot_key(lo),
                R.c.slot_utc < slot_key(hi),
            )
        ).all()
    return {(r.unit_code, r.slot_utc): list(r.schedule_ids) for r in rows}


def positions_of(
    engine: Engine, wanted: Iterable[tuple[str | None, datetime, int]]
) -> dict[tuple[str | None, str, int], int]:
    """(unit, slot key, schedule id) → its position, for each (unit, slot, schedule)."""
    asked = [(u, as_utc(at), s) for u, at, s in wanted]
    if not asked:
        return {}
    stamps = [at for _u, at, _s in asked]
    units = {u for u, _at, _s in asked if u}
    orders = load_orders(engine, units, min(stamps), max(stamps) + timedelta(seconds=1))
    return {
        (u, slot_key(at), s): position(s, orders.get((u, slot_key(at)), []) if u else [])
        for u, at, s in asked
    }


def move_up_in(
    engine: Engine,
    unit_code: str,
    at: datetime,
    clash: Sequence[int],
    schedule_id: int,
    by: str,
    now: datetime,
) -> list[int]:
    """Move `schedule_id` one place up in a commune's slot and keep the order (who, when):
    read and written in one transaction, so two taps at once both count."""
    R = RunningOrder.__table__
    key = slot_key(at)
    for attempt in range(3):
        try:
            with write(engine) as conn:
                found = conn.execute(
                    select(R.c.id, R.c.schedule_ids).where(
                        R.c.unit_code == unit_code, R.c.slot_utc == key
                    )
                ).first()
                stored = list(found.schedule_ids) if found else []
                current = sorted(clash, key=lambda s: position(s, stored))
                order = moved_up(stored, current, schedule_id)
                values = {"schedule_ids": order, "set_by": by, "set_at": now}
                if found is None:
                    conn.execute(R.insert().values(unit_code=unit_code, slot_utc=key, **values))
                else:
                    conn.execute(R.update().where(R.c.id == found.id).values(**values))
            return order
        except IntegrityError:  # another tap made the slot's row first: read it, again
            if attempt == 2:
                raise
    return []
