"""Deliveries (one per occurrence × endpoint) and the append-only activity log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel, UniqueConstraint


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


class DispatcherWorker(SQLModel, table=True):
    """A running dispatcher process; its heartbeat tells others its claims are alive."""

    __tablename__ = "dispatcher_worker"

    id: str = Field(primary_key=True)  # host:pid:nonce, as written in delivery.claimed_by
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
