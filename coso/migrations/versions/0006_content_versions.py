"""content versions: every version of a content item, approval of an exact version

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00.000000
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _checksum(title: str, body: str, media_sha256: str | None) -> str:
    """As content.versions.version_checksum computed it when this migration was written."""
    text = json.dumps([title, body, media_sha256], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade() -> None:
    # A plain ADD COLUMN: on SQLite a batch would copy content_item and drop the table that
    # schedules and media reference.
    op.add_column(
        "content_item",
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    versions = op.create_table(
        "content_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("media_sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("media_file_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("media_duration_seconds", sa.Float(), nullable=True),
        sa.Column("media_loudness_lufs", sa.Float(), nullable=True),
        sa.Column("media_size_bytes", sa.Integer(), nullable=True),
        sa.Column("media_source_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("checksum", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("edited_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("edited_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("approved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["content_id"], ["content_item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("content_id", "version"),
    )
    # What each item holds today is its version 1: approved if it ever was. Read through
    # typed columns, so times come back as times on SQLite too.
    text, when = sqlmodel.sql.sqltypes.AutoString(), sqlmodel.sql.sqltypes.UTCDateTime()
    item = sa.table(
        "content_item",
        sa.column("id", sa.Integer()),
        sa.column("title", text),
        sa.column("body", text),
        sa.column("approved_by", text),
        sa.column("approved_at", when),
        sa.column("created_at", when),
    )
    media = sa.table(
        "media_asset",
        sa.column("content_id", sa.Integer()),
        sa.column("sha256", text),
        sa.column("file_name", text),
        sa.column("duration_seconds", sa.Float()),
        sa.column("loudness_lufs", sa.Float()),
        sa.column("size_bytes", sa.Integer()),
        sa.column("source_name", text),
    )
    rows = (
        op.get_bind()
        .execute(
            sa.select(
                item,
                media.c.sha256,
                media.c.file_name,
                media.c.duration_seconds,
                media.c.loudness_lufs,
                media.c.size_bytes,
                media.c.source_name,
            ).select_from(item.outerjoin(media, media.c.content_id == item.c.id))
        )
        .all()
    )
    first = []
    for r in rows:
        approved = r.approved_at is not None
        first.append(
            {
                "content_id": r.id,
                "version": 1,
                "title": r.title,
                "body": r.body,
                "media_sha256": r.sha256,
                "media_file_name": r.file_name,
                "media_duration_seconds": r.duration_seconds,
                "media_loudness_lufs": r.loudness_lufs,
                "media_size_bytes": r.size_bytes,
                "media_source_name": r.source_name,
                "checksum": _checksum(r.title, r.body, r.sha256),
                "state": "approved" if approved else "draft",
                "edited_by": "",
                "edited_at": r.created_at,
                "approved_by": r.approved_by if approved else None,
                "approved_at": r.approved_at,
            }
        )
    if first:
        op.bulk_insert(versions, first)


def downgrade() -> None:
    raise NotImplementedError("coso migrations go forward only")
