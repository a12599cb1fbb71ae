"""Queued items that a change to broadcast sessions leaves without their session, and the
sessions they move to: the next of their unit with room for them, within their schedule's
range and among the sessions their queue allows, through `session_queue.place`; an item
that finds none is named in the refusal, with the session that came nearest and what is in
it. Functions of data, but `future_placements`, which reads them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, select

from content.models import ContentItem
from coso.clock import as_utc, date_text, in_zone, time_text
from coso.errors import InputError, InputErrors
from schedules.models import Plan, Schedule
from schedules.session_queue import REFUSE, Booked, Load, NoRoom, Queue, minutes_text, place
from schedules.sessions import (
    DayChange,
    Instance,
    SessionDef,
    SessionPlacement,
    UnitPlace,
    instances,
)

SP = SessionPlacement.__table__
S = Schedule.__table__
C = ContentItem.__table__
P = Plan.__table__


@dataclass(frozen=True)
class Placed:
    """A queued schedule's item placed in one unit's session instance."""

    id: int  # its session_placement row
    schedule_id: int
    unit: str
    session: str
    at: datetime  # the session's start, UTC
    seconds: int
    title: str
    priority: str
    names: tuple[str, ...]  # the sessions its queue allows (none: any)
    last: date  # the last day of its schedule's range
    zone: str

    @property
    def booked(self) -> Booked:
        return Booked(self.title, self.seconds, self.priority, self.schedule_id)

    def where(self, unit_name: str) -> str:
        return (
            f"{self.title!r} ({minutes_text(self.seconds)}) ở buổi {self.session!r}"
            f" {time_text(self.at, self.zone)} ngày {date_text(self.at, self.zone)} của"
            f" {unit_name}"
        )


@dataclass(frozen=True)
class Move:
    item: Placed
    to: Instance

    def text(self, unit_name: str) -> str:
        return (
            f"{self.item.where(unit_name)} chuyển sang buổi {self.to.name!r}"
            f" {time_text(self.to.at, self.item.zone)} ngày {date_text(self.to.at, self.item.zone)}"
        )


def _playing_order(items: Iterable[Placed]) -> list[Placed]:
    return sorted(items, key=lambda p: (p.at, p.priority != "priority", p.schedule_id))


def _span(items: Sequence[Placed], tz: str) -> tuple[date, date]:
    days = [in_zone(p.at, tz).date() for p in items]
    return min(days), max(days)


def lost(
    placed: Sequence[Placed],
    places: Mapping[str, UnitPlace],
    defs: Sequence[SessionDef],
    changes: Sequence[DayChange],
) -> list[Placed]:
    """The placed items whose session instance the sessions `defs` and `changes` no longer
    hold, or hold shorter than what is in it (the last in playing order are out)."""
    by_unit: dict[tuple[str, str], list[Placed]] = defaultdict(list)
    for p in placed:
        by_unit[(p.unit, p.zone)].append(p)
    out: list[Placed] = []
    for (unit, tz), items in by_unit.items():
        first, last = _span(items, tz)
        held = {(i.at, i.name): i for i in instances(places[unit], defs, changes, first, last, tz)}
        inside: dict[tuple[datetime, str], list[Placed]] = defaultdict(list)
        for p in items:
            inside[(p.at, p.session)].append(p)
        for key, group in inside.items():
            instance = held.get(key)
            if instance is None:
                out += group
                continue
            room = instance.seconds
            for p in sorted(group, key=lambda p: (p.priority != "priority", p.schedule_id)):
                room -= p.seconds
                if room < 0:
                    out.append(p)
    return _playing_order(out)


def rehome(
    gone: Sequence[Placed],
    places: Mapping[str, UnitPlace],
    defs: Sequence[SessionDef],
    changes: Sequence[DayChange],
    load: Load,
    *,
    now: datetime,
    field: str,
    value: object,
) -> list[Move]:
    """Each item of `gone` into the next session of its unit with room for it (booked in
    `load`, what the sessions hold without `gone`), from its old session's start to the
    end of its range, among the sessions its queue allows, never twice in one session;
    InputErrors (on `field` = `value`) naming each item that finds none."""
    moves: list[Move] = []
    refused: list[InputError] = []
    for item in gone:
        place_ = places[item.unit]
        first = in_zone(item.at, item.zone).date()
        found = instances(place_, defs, changes, first, item.last, item.zone)
        candidates = [
            s
            for s in found
            if s.at >= item.at
            and s.at > now
            and (s.at, s.name) != (item.at, item.session)
            and (not item.names or s.name in item.names)
            and all(b.order != item.schedule_id for b in load.items.get((s.unit, s.at), []))
        ]
        to = _first_with_room(candidates, load, item, now, place_.name)
        if isinstance(to, Instance):
            moves.append(Move(item, to))
            continue
        refused.append(
            InputError(field, value, f"{item.where(place_.name)} không chuyển được: {to.reason}")
        )
    if refused:
        raise InputErrors(refused)
    return moves


def _first_with_room(
    candidates: list[Instance], load: Load, item: Placed, now: datetime, unit_name: str
) -> Instance | NoRoom:
    """The first of `candidates` with room for `item`, booked there; else the refusal. One
    week at a time through `place` (which books, for a week, as many as the queue wants)."""
    weeks: dict[tuple[int, int], list[Instance]] = defaultdict(list)
    for s in candidates:
        weeks[s.day.isocalendar()[:2]].append(s)
    one = Queue(per_week=1, when_full=REFUSE)
    for week in sorted(weeks):
        try:
            (chosen,) = place(
                weeks[week],
                load,
                item.booked,
                one,
                after=now,
                last=item.last,
                unit_name=unit_name,
                tz=item.zone,
            )
        except NoRoom:
            continue
        return chosen
    nearest = max(candidates, key=load.left, default=None)
    return NoRoom(item.title, item.seconds, unit_name, nearest, load, item.last, item.zone)


def load_without(placed: Iterable[Placed], gone: Iterable[Placed]) -> Load:
    """What the sessions hold: the placed items less those gone."""
    out = {p.id for p in gone}
    load = Load()
    for p in placed:
        if p.id not in out:
            load.items[(p.unit, p.at)].append(p.booked)
    return load


def future_placements(conn: Connection, now: datetime) -> list[Placed]:
    """The items of enabled queued schedules placed in sessions that start after `now`."""
    rows = conn.execute(
        select(
            SP.c.id,
            SP.c.schedule_id,
            SP.c.unit_code,
            SP.c.session,
            SP.c.starts_at,
            SP.c.seconds,
            S.c.priority,
            S.c.queue,
            S.c.until_local,
            S.c.zone,
            C.c.title,
            P.c.period_end,
        )
        .join(S, S.c.id == SP.c.schedule_id)
        .join(C, C.c.id == S.c.content_id)
        .join(P, P.c.id == S.c.plan_id)
        .where(SP.c.starts_at > now, S.c.enabled.is_(True))
        .order_by(SP.c.starts_at, SP.c.schedule_id)
    ).all()
    return [
        Placed(
            r.id,
            r.schedule_id,
            r.unit_code,
            r.session,
            as_utc(r.starts_at),
            r.seconds,
            r.title,
            r.priority,
            tuple((r.queue or {}).get("sessions") or ()),
            datetime.fromisoformat(r.until_local).date() if r.until_local else r.period_end,
            r.zone,
        )
        for r in rows
    ]
