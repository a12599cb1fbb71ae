"""broadcast sessions, their exceptions, items placed in them, and queued schedules

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "broadcast_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", _TEXT(), nullable=False),
        sa.Column("name", _TEXT(), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("start", _TEXT(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plan.id"), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("scope", "name"),
    )
    op.create_table(
        "session_exception",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope", _TEXT(), nullable=False),
        sa.Column("session", _TEXT(), nullable=False),
        sa.Column("kind", _TEXT(), nullable=False),
        sa.Column("start", _TEXT(), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("note", _TEXT(), nullable=False),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plan.id"), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_session_exception_day", "session_exception", ["day"])
    op.create_table(
        "session_placement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("schedule_id", sa.Integer(), sa.ForeignKey("schedule.id"), nullable=False),
        sa.Column("unit_code", _TEXT(), nullable=False),
        sa.Column("session", _TEXT(), nullable=False),
        sa.Column("starts_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("placed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("schedule_id", "unit_code", "starts_at"),
    )
    for column in ("schedule_id", "unit_code", "starts_at"):
        op.create_index(f"ix_session_placement_{column}", "session_placement", [column])
    with op.batch_alter_table("schedule") as batch:
        batch.add_column(sa.Column("queue", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("rdates_local", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        batch.drop_column("rdates_local")
        batch.drop_column("queue")
    for column in ("schedule_id", "unit_code", "starts_at"):
        op.drop_index(f"ix_session_placement_{column}", "session_placement")
    op.drop_table("session_placement")
    op.drop_index("ix_session_exception_day", "session_exception")
    op.drop_table("session_exception")
    op.drop_table("broadcast_session")
