"""Which schedules' quiet-hours pauses are in the log: one row per schedule and night,
claimed with an insert that skips a row already there, so that of several processes that
notice the same quiet hours exactly one logs the pause."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Field, SQLModel

from coso.db import insert_ignoring_duplicates, write

KEEP = timedelta(days=7)  # rows of nights long over are removed as new ones come


class SmsPause(SQLModel, table=True):
    """A schedule's messages paused by the quiet hours that end at `until` (logged once)."""

    __tablename__ = "sms_pause"

    schedule_id: int = Field(primary_key=True)
    until: datetime = Field(primary_key=True)
    at: datetime


def claim_pauses(
    engine: Engine, pauses: Iterable[tuple[int, datetime]], now: datetime
) -> set[tuple[int, datetime]]:
    """The (schedule, until) pairs this call recorded first: the ones the caller logs. One
    transaction; the unique key makes a concurrent claim of the same pair record nothing."""
    table = SmsPause.__table__
    claimed: set[tuple[int, datetime]] = set()
    with write(engine) as conn:
        conn.execute(delete(table).where(table.c.until < now - KEEP))
        for schedule_id, until in sorted(set(pauses)):
            row = {"schedule_id": schedule_id, "until": until, "at": now}
            # RETURNING, not rowcount: on PostgreSQL (psycopg) its rowcount reads -1
            added = conn.execute(
                insert_ignoring_duplicates(conn, table).returning(table.c.schedule_id), row
            ).first()
            if added is not None:
                claimed.add((schedule_id, until))
    return claimed
