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


class MediaAsset(SQLModel, table=True):
    """A content item's prepared audio: one format, normalised loudness, fixed checksum."""

    __tablename__ = "media_asset"

    id: int | None = Field(default=None, primary_key=True)
    content_id: int = Field(foreign_key="content_item.id", unique=True)
    sha256: str = Field(index=True)
    file_name: str  # below media.dir: <sha256>.mp3
    duration_seconds: float
    loudness_lufs: float
    size_bytes: int
    source_name: str
    created_at: datetime
