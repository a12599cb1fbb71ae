"""Deliveries (one per occurrence × endpoint), the append-only activity log, and the
outcome counts kept from it for the report."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel, UniqueConstraint

from channels.states import PROVEN

# Entries that say a delivery reached people (the report's `done`), as SQL on activity_entry.
REACHED_SQL = f"state IN ({', '.join(repr(s) for s in PROVEN)})"  # our own constants


class Delivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("occurrence_id", "endpoint_id"),
        Index("ix_delivery_due", "channel", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id")
    endpoint_id: int = Field(foreign_key="endpoint.id", index=True)
    # Copied from the occurrence so the hot paths and the log need no joins.
    plan_id: int = Field(index=True)
    schedule_id: int
    content_id: int
    channel: str
    unit_code: str | None = None
    priority: int = 0
    scheduled_for: datetime
    state: str
    attempts: int = 0
    next_attempt_at: datetime
    expires_at: datetime | None = None
    provider_id: str | None = Field(default=None, index=True)
    last_error: str | None = None
    claimed_by: str | None = None
    created_at: datetime
    updated_at: datetime


class ActivityEntry(SQLModel, table=True):
    """What was sent, played, confirmed or missed, by whom; the source of the plan's reports."""

    __tablename__ = "activity_entry"
    __table_args__ = (
        Index("ix_activity_plan_at", "plan_id", "at"),
        Index("ix_activity_endpoint_at", "endpoint_id", "at"),
        # The report's outcomes: each delivery's last entry with a state, from the index.
        Index("ix_activity_outcome", "plan_id", "delivery_id", "id", "state"),
        # The report's distinct endpoints reached: an endpoint's entries that reached people.
        Index(
            "ix_activity_reached",
            "plan_id",
            "endpoint_id",
            "unit_code",
            "occurrence_id",
            "delivery_id",
            sqlite_where=text(REACHED_SQL),
            postgresql_where=text(REACHED_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    plan_id: int
    schedule_id: int | None = None
    occurrence_id: int | None = None
    delivery_id: int | None = Field(default=None, index=True)
    content_id: int | None = None
    channel: str
    unit_code: str | None = None
    endpoint_id: int | None = None
    event: str
    state: str | None = None
    actor: str
    detail: str | None = None


class OutcomeCount(SQLModel, table=True):
    """How many deliveries of a plan whose slots fall on one local day (in the plan's
    zone), of one channel, unit and content item, have each outcome: the state and event
    of their last log entry with a state. Kept in the same transaction as the entries that
    change it (`dispatcher.outcome_counts`); the log stays the source: `coso report PLAN
    --check` compares the two, `--rebuild` counts again. In key order, a plan's counts are
    read already grouped by channel, unit and piece: the days of one week in one month,
    which weeks and months are made of."""

    __tablename__ = "outcome_count"
    __table_args__ = {"sqlite_with_rowid": False}

    plan_id: int = Field(primary_key=True)
    zone: str = Field(primary_key=True)  # the plan's, when the days were counted
    channel: str = Field(primary_key=True)
    unit_code: str = Field(primary_key=True)  # "" where the entries have none
    piece: date = Field(primary_key=True)  # the first day of the day's week in its month
    state: str = Field(primary_key=True)
    event: str = Field(primary_key=True)
    content_id: int = Field(primary_key=True)  # 0 where the entries have none
    day: date = Field(primary_key=True)
    n: int


class OutcomePieceCount(SQLModel, table=True):
    """The outcome counts summed over the days of each piece (`OutcomeCount` without its
    day), kept with them: a report whose period and targets start and end with pieces (a
    month, a quarter, a year; weeks, months) reads a seventh of the rows."""

    __tablename__ = "outcome_count_piece"
    __table_args__ = {"sqlite_with_rowid": False}

    plan_id: int = Field(primary_key=True)
    zone: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    unit_code: str = Field(primary_key=True)
    piece: date = Field(primary_key=True)
    state: str = Field(primary_key=True)
    event: str = Field(primary_key=True)
    content_id: int = Field(primary_key=True)
    n: int


class DispatcherWorker(SQLModel, table=True):
    """A running dispatcher process; its heartbeat tells others its claims are alive."""

    __tablename__ = "dispatcher_worker"

    id: str = Field(primary_key=True)  # host:pid:nonce, as written in delivery.claimed_by
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
