"""Queueing an item into sessions, checked for room when it is planned.

A queued schedule wants its item `per_week` times in each week (Monday to Sunday, local)
of its date range, in different sessions of each unit it reaches. The item takes the week's
earliest sessions that still have room for it. When a week has too few: with
`when_full = "next"` the missing broadcasts go to the next sessions with room, up to the
end of the range; with `"refuse"` the schedule is refused. Either way, a broadcast that
finds no room before the range ends is refused, naming the session that came nearest, what
is in it and how much is left: never dropped, never overrunning a session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from coso.clock import date_text, time_text
from schedules.sessions import Instance

NEXT, REFUSE = "next", "refuse"


@dataclass(frozen=True)
class Queue:
    per_week: int = 1
    sessions: tuple[str, ...] = ()  # only sessions of these names (none: any)
    when_full: str = NEXT


@dataclass(frozen=True)
class Booked:
    """One item already in a session."""

    title: str
    seconds: int
    priority: str = "normal"
    order: int = 0  # queue order (schedule id, or place in the file)


@dataclass
class Load:
    """What each unit's session instance already holds: (unit, start UTC) → items."""

    items: dict[tuple[str, datetime], list[Booked]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def used(self, instance: Instance) -> int:
        return sum(b.seconds for b in self.items.get((instance.unit, instance.at), []))

    def left(self, instance: Instance) -> int:
        return instance.seconds - self.used(instance)

    def book(self, instance: Instance, item: Booked) -> None:
        self.items[(instance.unit, instance.at)].append(item)


class NoRoom(ValueError):
    """A broadcast of a queued item that no session within its range has room for."""

    def __init__(
        self,
        title: str,
        seconds: int,
        unit_name: str,
        nearest: Instance | None,
        load: Load,
        last: date,
        tz: str,
    ) -> None:
        self.nearest = nearest
        what = f"{title!r} ({minutes_text(seconds)})"
        if nearest is None:
            reason = (
                f"{unit_name} không có buổi phát nào còn tới trước hết ngày {date_text(last)}"
                f" để xếp {what}"
            )
        else:
            inside = load.items.get((nearest.unit, nearest.at), [])
            held = ", ".join(f"{b.title!r} {minutes_text(b.seconds)}" for b in inside) or "trống"
            reason = (
                f"không xếp được {what} vào buổi phát của {unit_name}: buổi {nearest.name!r}"
                f" {time_text(nearest.at, tz)} ngày {date_text(nearest.at, tz)}"
                f" ({minutes_text(nearest.seconds)}) chỉ còn {minutes_text(load.left(nearest))}"
                f" (đã có: {held}); không còn buổi nào đủ chỗ đến hết ngày {date_text(last)}"
            )
        super().__init__(reason)
        self.reason = reason


def minutes_text(seconds: int) -> str:
    minutes, rest = divmod(max(0, int(seconds)), 60)
    if rest and minutes:
        return f"{minutes} phút {rest} giây"
    return f"{rest} giây" if not minutes else f"{minutes} phút"


def place(
    sessions: Sequence[Instance],
    load: Load,
    item: Booked,
    queue: Queue,
    *,
    after: datetime,
    last: date,
    unit_name: str,
    tz: str,
) -> list[Instance]:
    """The sessions of one unit `item` goes to (booked in `load`), or NoRoom.

    `sessions`: the unit's instances over the range, in time order; only those starting
    after `after` (now: a session on air or gone takes nothing) and named in the queue are
    used."""
    usable = [
        s for s in sessions if s.at > after and (not queue.sessions or s.name in queue.sessions)
    ]
    weeks: dict[tuple[int, int], list[Instance]] = defaultdict(list)
    for s in usable:
        weeks[s.day.isocalendar()[:2]].append(s)
    chosen: list[Instance] = []
    owed = 0
    nearest: Instance | None = None
    ordered_weeks = sorted(weeks)
    for week in ordered_weeks:
        # A week with fewer sessions than per_week (the range's first or last) owes nothing
        # for those it lacks; a broadcast that found its week full is owed onwards.
        want = min(queue.per_week, len(weeks[week])) + owed
        for s in weeks[week]:
            if want == 0:
                break
            if load.left(s) >= item.seconds:
                load.book(s, item)
                chosen.append(s)
                want -= 1
            elif nearest is None or load.left(s) > load.left(nearest):
                nearest = s
        if want and queue.when_full == REFUSE:
            raise NoRoom(
                item.title, item.seconds, unit_name, nearest or _last(weeks[week]), load, last, tz
            )
        owed = want
    if owed or not ordered_weeks:
        raise NoRoom(item.title, item.seconds, unit_name, nearest, load, last, tz)
    return chosen


def _last(found: Iterable[Instance]) -> Instance | None:
    items = list(found)
    return items[-1] if items else None


def programme_order(items: Iterable[Booked]) -> list[Booked]:
    """A session's items as they play: priority before normal, then in queue order
    (emergencies stay outside sessions)."""
    return sorted(items, key=lambda b: (b.priority != "priority", b.order))
