"""Content items: what a plan says, approved before it can go out."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel, UniqueConstraint

DRAFT, APPROVED, RETIRED = "draft", "approved", "retired"
STATES = (DRAFT, APPROVED, RETIRED)
# A version is a draft until approved; the one it replaces (approved, or a draft nobody
# approved) is then superseded.
SUPERSEDED = "superseded"
VERSION_STATES = (DRAFT, APPROVED, SUPERSEDED)
KINDS = ("text", "audio", "article")


class ContentItem(SQLModel, table=True):
    """What goes out: the approved version's title, body and audio (MediaAsset), numbered
    `version`. Edits wait in content_version until that version is approved."""

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
    version: int = 1


class ContentVersion(SQLModel, table=True):
    """Every version of a content item as written, with who approved it. `checksum` is
    taken over title, body and audio sha256: approval names exactly what was seen."""

    __tablename__ = "content_version"
    __table_args__ = (UniqueConstraint("content_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    content_id: int = Field(foreign_key="content_item.id")
    version: int
    title: str
    body: str = ""
    # Its prepared audio, as media_asset keeps it; the item's asset follows on approval.
    media_sha256: str | None = None
    media_file_name: str | None = None
    media_duration_seconds: float | None = None
    media_loudness_lufs: float | None = None
    media_size_bytes: int | None = None
    media_source_name: str | None = None
    media_voice: str | None = None  # the synthesiser's voice when the audio is speech
    checksum: str
    state: str = DRAFT
    edited_by: str = ""
    edited_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None


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
    # The voice that spoke the item's text (content.speech); None: uploaded audio.
    voice: str | None = None
