"""Emergencies: one warning declared once, out on every channel (`dispatcher.emergency`
sends it). Each has its own plan, numbered by its reference ("KC-0001/2026"), so its
schedules, deliveries and activity log are read by that reference."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel, UniqueConstraint

ACTIVE, CANCELLED, ENDED = "active", "cancelled", "ended"
STATES = (ACTIVE, CANCELLED, ENDED)
PREFIX = "KC"  # khẩn cấp
DRILL_LABEL = "DIỄN TẬP"


class Emergency(SQLModel, table=True):
    __tablename__ = "emergency"
    __table_args__ = (UniqueConstraint("year", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True)  # "KC-0001/2026"
    year: int
    number: int
    plan_id: int = Field(foreign_key="plan.id", unique=True)
    title: str
    text: str
    units: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    until: datetime | None = None
    drill: bool = False
    # active (đang phát) → cancelled (đã huỷ); an active one past `until` is shown ended
    # (đã hết hạn).
    state: str = ACTIVE
    source: str  # "cli", "console:<login>", "cap:<identifier>"
    declared_by: str
    declared_at: datetime
    skip_opt_outs: bool = False
    cancel_sms: bool = True
    version: int = 1  # the content's version: each update sends anew
    updated_at: datetime
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    note: str | None = None


def reference_text(number: int, year: int, prefix: str = PREFIX) -> str:
    return f"{prefix}-{number:04d}/{year}"


def shown_state(state: str, until: datetime | None, now: datetime) -> str:
    """The state people read: an active emergency past its end has ended."""
    if state == ACTIVE and until is not None and until <= now:
        return ENDED
    return state


def labelled(text: str, drill: bool) -> str:
    """A drill's words carry its label wherever they are read."""
    return f"[{DRILL_LABEL}] {text}" if drill else text
