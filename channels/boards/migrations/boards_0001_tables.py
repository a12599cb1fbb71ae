"""boards channel: boards' pairing and status, their programmes, their display records (a
branch of its own)

Revision ID: boards_0001
Revises:
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "boards_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("boards",)
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "board_device",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", TEXT(), nullable=True),
        sa.Column("pair_code", TEXT(), nullable=True),
        sa.Column("pair_claim_hash", TEXT(), nullable=True),
        sa.Column("pair_requested_at", TIME(), nullable=True),
        sa.Column("pair_approved_by", TEXT(), nullable=True),
        sa.Column("pair_token", TEXT(), nullable=True),
        sa.Column("paired_at", TIME(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen", TIME(), nullable=True),
        sa.Column("showing", TEXT(), nullable=True),
        sa.Column("showing_since", TIME(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("brightness_signature", TEXT(), nullable=True),
        sa.Column("sent_signature", TEXT(), nullable=True),
        sa.Column("last_failure", TEXT(), nullable=True),
        sa.Column("last_failure_at", TIME(), nullable=True),
        sa.PrimaryKeyConstraint("endpoint_id"),
    )
    op.create_table(
        "board_item",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("title", TEXT(), nullable=False),
        sa.Column("text", TEXT(), nullable=False),
        sa.Column("image", TEXT(), nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("scroll", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("starts_at", TIME(), nullable=False),
        sa.Column("ends_at", TIME(), nullable=False),
        sa.Column("ended_at", TIME(), nullable=True),
        sa.Column("ended_by", TEXT(), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    with op.batch_alter_table("board_item") as batch:
        batch.create_index("ix_board_item_endpoint_id", ["endpoint_id"], unique=False)
        batch.create_index("ix_board_item_ends_at", ["ends_at"], unique=False)
    op.create_table(
        "board_display",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("record_id", TEXT(), nullable=False),
        sa.Column("started_at", TIME(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("received_at", TIME(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "record_id"),
    )
    with op.batch_alter_table("board_display") as batch:
        batch.create_index("ix_board_display_delivery_id", ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_table("board_display")
    op.drop_table("board_item")
    op.drop_table("board_device")
