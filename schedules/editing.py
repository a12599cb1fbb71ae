"""Enable and disable schedules; the timer sees the change at its next reconcile."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select, update

from content.models import APPROVED, ContentItem
from coso.db import write
from coso.errors import InputError
from schedules.models import Schedule

S = Schedule.__table__


def set_enabled(engine: Engine, schedule_id: int, enabled: bool, now: datetime) -> None:
    """Enabling needs approved content, and fires only slots from now on (no back-fill of
    the time it was off)."""
    with engine.connect() as conn:
        row = conn.execute(select(S).where(S.c.id == schedule_id)).first()
        if row is None:
            raise InputError("schedule", schedule_id, "no schedule with this id")
        state = conn.scalar(
            select(ContentItem.__table__.c.state).where(
                ContentItem.__table__.c.id == row.content_id
            )
        )
    if enabled and state != APPROVED:
        raise InputError("schedule", schedule_id, f"its content is {state}; approve it first")
    values: dict[str, object] = {"enabled": enabled, "updated_at": now}
    if enabled and not row.enabled:
        values["fired_through"] = max(now, row.fired_through)
    with write(engine) as conn:
        conn.execute(update(S).where(S.c.id == schedule_id).values(**values))
