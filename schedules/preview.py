"""What a plan would send, where and when, over the next days; sends nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from channels.endpoints import resolve_targets
from content.models import ContentItem
from coso.clock import in_zone
from coso.config import Settings
from schedules.models import Schedule
from schedules.session_store import Programme, only_placed, placed_units, programmes
from schedules.sessions import SessionPlacement
from schedules.timing import timing_of

# Slots of one schedule a preview lists at most: one firing far more often than its channel
# allows (stored before the bounds were checked) cannot make the preview run for minutes.
MOST_PER_SCHEDULE = 2000


@dataclass(frozen=True)
class PreviewRow:
    when: datetime
    schedule: str
    channel: str
    content: str
    priority: str
    endpoints: int
    units: int


# (schedule row, its targets, how many slots) → for each slot: (content id, its targets)
Turns = Callable[[Any, Sequence[tuple[int, str | None]], int], list[list[tuple[int, Any]]]]


def preview(
    engine: Engine, plan_id: int, start: datetime, days: int, turns: Turns | None = None
) -> list[PreviewRow]:
    """`turns`: how a rotation picks per endpoint (the engine's, from the activity log);
    without it a rotating schedule shows its first item everywhere."""
    S, C = Schedule.__table__, ContentItem.__table__
    with engine.connect() as conn:
        schedules = conn.execute(
            select(S).where(S.c.plan_id == plan_id, S.c.enabled.is_(True))
        ).all()
        titles = dict(conn.execute(select(C.c.id, C.c.title).where(C.c.plan_id == plan_id)).all())
    rows = []
    for sch in schedules:
        targets = resolve_targets(engine, sch.channel, sch.targets)
        times = timing_of(sch).fire_times(
            start, start + timedelta(days=days), most=MOST_PER_SCHEDULE
        )
        ahead = (
            turns(sch, targets, len(times))
            if turns is not None and sch.rotation
            else [[(sch.content_id, targets)]] * len(times)
        )
        placed = placed_units(engine, sch.id) if sch.queue is not None else None
        for when, groups in zip(times, ahead, strict=True):
            for content_id, everywhere in groups:
                group = (
                    everywhere
                    if placed is None
                    else only_placed(everywhere, placed.get(when, set()))
                )
                if not group:
                    continue
                rows.append(
                    PreviewRow(
                        when,
                        sch.name,
                        sch.channel,
                        titles.get(content_id, ""),
                        sch.priority,
                        len(group),
                        len({unit for _, unit in group}),
                    )
                )
    return sorted(rows, key=lambda r: (r.when, r.schedule, r.content))


def plan_programmes(
    engine: Engine, settings: Settings, plan_id: int, start: datetime, days: int, tz: str
) -> list[Programme]:
    """The sessions over the window of every unit a queued schedule of the plan is placed
    in, each with its whole programme (every plan's items) and the time left."""
    P, S = SessionPlacement.__table__, Schedule.__table__
    with engine.connect() as conn:
        units = set(
            conn.scalars(
                select(P.c.unit_code)
                .join(S, S.c.id == P.c.schedule_id)
                .where(S.c.plan_id == plan_id)
                .distinct()
            )
        )
    if not units:
        return []
    first = in_zone(start, tz).date()
    last = first + timedelta(days=days - 1)
    return programmes(engine, settings, units, first, last, tz)
