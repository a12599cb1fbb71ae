"""Tables of record: plans, their targets, schedules and occurrences."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel, UniqueConstraint

from channels.states import EMERGENCY, NORMAL, PRIORITIES, PRIORITY  # noqa: F401

DUE, MISSED = "due", "missed"


class Plan(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True)  # "95/KH-UBND"
    title: str
    issuer: str = ""
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    issued_on: date | None = None
    period_start: date
    period_end: date
    zone: str = "Asia/Ho_Chi_Minh"
    created_at: datetime


class PlanTarget(SQLModel, table=True):
    """What the plan promises, e.g. 2 loudspeaker broadcasts a week in every commune."""

    __tablename__ = "plan_target"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    channel: str
    count: int
    per: str  # day, week, month, plan
    unit_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    note: str = ""


class Schedule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    name: str
    content_id: int = Field(foreign_key="content_item.id")
    channel: str
    targets: dict[str, list[str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    # Timing, in the plan's zone: a one-off at `start`, or an RFC 5545 RRULE from `start`.
    # Local wall times are kept as ISO text ("2021-05-03T06:00:00"): they mean nothing
    # without the zone, and must not be shifted by the database driver.
    start_local: str
    rrule: str | None = None
    until_local: str | None = None
    exdates_local: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    zone: str = "Asia/Ho_Chi_Minh"
    priority: str = NORMAL
    validity_seconds: int | None = None
    misfire_grace_seconds: int = 900
    resend_unknown: bool = False
    # The channel's own options for this schedule, as its plugin checked them at import.
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # A rotation (schedules.rotation): the content keys of the pool, in order (`content_id`
    # is then the first), how each occurrence picks per endpoint, and the weights by key.
    rotation: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rotation_policy: str | None = None
    rotation_weights: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    # Queued into broadcast sessions (schedules.session_queue): per_week, sessions,
    # when_full, seconds; its times are then the sessions it was placed in, as explicit
    # local times (RFC 5545 RDATEs), and schedules.sessions.SessionPlacement says where.
    queue: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    rdates_local: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    # All fire times up to here have an occurrence row (or were before the schedule existed).
    fired_through: datetime
    updated_at: datetime


class Occurrence(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("schedule_id", "scheduled_for"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    scheduled_for: datetime
    status: str = DUE  # due | missed
    fired_at: datetime
    late_seconds: int = 0
    expires_at: datetime | None = None
    fanned_out_at: datetime | None = Field(default=None, index=True)
