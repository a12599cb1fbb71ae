"""The short numeric code of each open station task, that an operator texts back (`XN 4821`).

A code names a slot (endpoint, schedule, time), so the morning list can give codes to items
that have not fired yet. Codes are unique among open tasks (the table's key); a code is free
again once its task can no longer be confirmed. Codes are drawn at random from 1000–9999
(five digits when more than a quarter of those are open, six beyond), so that a mistyped
code rarely names another open task."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, select
from sqlmodel import Field, SQLModel, UniqueConstraint

from coso.clock import as_utc
from coso.db import insert_ignoring_duplicates, write

# (endpoint id, schedule id, slot in UTC)
SlotKey = tuple[int, int, datetime]


class StationCode(SQLModel, table=True):
    """An open task's code, until `open_until` (then it may name another task)."""

    __tablename__ = "station_code"
    __table_args__ = (UniqueConstraint("endpoint_id", "schedule_id", "scheduled_for"),)

    code: str = Field(primary_key=True)
    endpoint_id: int
    schedule_id: int
    scheduled_for: datetime
    unit_code: str | None = None
    open_until: datetime = Field(index=True)
    created_at: datetime


T = StationCode.__table__


@dataclass(frozen=True)
class TaskSlot:
    endpoint_id: int
    schedule_id: int
    scheduled_for: datetime
    unit_code: str | None
    open_until: datetime

    @property
    def key(self) -> SlotKey:
        return (self.endpoint_id, self.schedule_id, as_utc(self.scheduled_for))


def width(open_codes: int) -> int:
    """Digits of a new code: 4 while at most a quarter of the 4-digit codes are taken."""
    digits = 4
    while open_codes > 9 * 10 ** (digits - 1) // 4 and digits < 8:
        digits += 1
    return digits


def _draw(taken: set[str], digits: int) -> str:
    while True:
        code = str(10 ** (digits - 1) + secrets.randbelow(9 * 10 ** (digits - 1)))
        if code not in taken:
            return code


def codes_for(engine: Engine, slots: Sequence[TaskSlot], now: datetime) -> dict[SlotKey, str]:
    """The code of each slot, drawing one for those that have none. Codes whose tasks closed
    before `now` are freed first. Concurrent callers agree: the slot and the code are
    both unique in the table, and a draw that lost a race is drawn again."""
    wanted = {s.key: s for s in slots}
    found: dict[SlotKey, str] = {}
    if not wanted:
        return found
    with write(engine) as conn:
        conn.execute(delete(T).where(T.c.open_until < now))
        for _ in range(10):
            found = _existing(conn, wanted)
            missing = [s for k, s in wanted.items() if k not in found]
            if not missing:
                break
            taken = set(conn.scalars(select(T.c.code)))
            digits = width(len(taken) + len(missing))
            rows = []
            for s in missing:
                code = _draw(taken, digits)
                taken.add(code)
                rows.append(
                    {
                        "code": code,
                        "endpoint_id": s.endpoint_id,
                        "schedule_id": s.schedule_id,
                        "scheduled_for": as_utc(s.scheduled_for),
                        "unit_code": s.unit_code,
                        "open_until": s.open_until,
                        "created_at": now,
                    }
                )
            conn.execute(insert_ignoring_duplicates(conn, T), rows)
    return found


def _existing(conn: Any, wanted: dict[SlotKey, TaskSlot]) -> dict[SlotKey, str]:
    endpoints = sorted({k[0] for k in wanted})
    rows = conn.execute(
        select(T.c.code, T.c.endpoint_id, T.c.schedule_id, T.c.scheduled_for).where(
            T.c.endpoint_id.in_(endpoints)
        )
    )
    found = {}
    for r in rows:
        key = (r.endpoint_id, r.schedule_id, as_utc(r.scheduled_for))
        if key in wanted:
            found[key] = r.code
    return found


def known_codes(engine: Engine, keys: Iterable[SlotKey], now: datetime) -> dict[SlotKey, str]:
    """The codes slots have already (none are drawn), of tasks still open at `now`."""
    wanted = set(keys)
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(T.c.code, T.c.endpoint_id, T.c.schedule_id, T.c.scheduled_for).where(
                T.c.endpoint_id.in_(sorted({k[0] for k in wanted})), T.c.open_until >= now
            )
        )
        found = {(r.endpoint_id, r.schedule_id, as_utc(r.scheduled_for)): r.code for r in rows}
    return {k: c for k, c in found.items() if k in wanted}


def task_of(engine: Engine, code: str, now: datetime) -> Any | None:
    """The open task a code names (a row of station_code), or None."""
    with engine.connect() as conn:
        return conn.execute(select(T).where(and_(T.c.code == code, T.c.open_until >= now))).first()


def free_closed(engine: Engine, now: datetime) -> int:
    """Forget the codes of tasks that can no longer be confirmed."""
    with write(engine) as conn:
        return conn.execute(delete(T).where(T.c.open_until < now)).rowcount or 0
