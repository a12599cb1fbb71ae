"""What a plan would send, where and when, over the next days; sends nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from channels.endpoints import resolve_targets
from content.models import ContentItem
from schedules.models import Schedule
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


def preview(engine: Engine, plan_id: int, start: datetime, days: int) -> list[PreviewRow]:
    S, C = Schedule.__table__, ContentItem.__table__
    with engine.connect() as conn:
        schedules = conn.execute(
            select(S, C.c.title.label("content_title"))
            .join(C, C.c.id == S.c.content_id)
            .where(S.c.plan_id == plan_id, S.c.enabled.is_(True))
        ).all()
    rows = []
    for sch in schedules:
        targets = resolve_targets(engine, sch.channel, sch.targets)
        units = len({unit for _, unit in targets})
        times = timing_of(sch).fire_times(
            start, start + timedelta(days=days), most=MOST_PER_SCHEDULE
        )
        for when in times:
            rows.append(
                PreviewRow(
                    when,
                    sch.name,
                    sch.channel,
                    sch.content_title,
                    sch.priority,
                    len(targets),
                    units,
                )
            )
    return sorted(rows, key=lambda r: (r.when, r.schedule))
