"""Content items: what a plan says, approved before it can go out."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel, UniqueConstraint

DRAFT, APPROVED, RETIRED = "draft", "approved", "retired"
STATES = (DRAFT, APPROVED, RETIRED)
KINDS = ("text", "audio", "article")


class ContentItem(SQLModel, table=True):
    __tablename__ = "content_item"
    __table_args__ = (UniqueConstraint("plan_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    key: str
    kind: str = "article"
    title: str
    body: str = ""
    state: str = DRAFT
    approved_by: str | None = None
    approved_at: datetime | None = None
    created_at: datetime
