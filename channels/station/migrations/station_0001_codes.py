"""station channel: open tasks' SMS codes, and the operators' lists of the day (a branch of
its own)

Revision ID: station_0001
Revises:
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "station_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("station",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_code",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("unit_code", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("open_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
        sa.UniqueConstraint("endpoint_id", "schedule_id", "scheduled_for"),
    )
    with op.batch_alter_table("station_code") as batch:
        batch.create_index("ix_station_code_open_until", ["open_until"], unique=False)
    op.create_table(
        "station_digest",
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("provider_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("login", "day"),
    )


def downgrade() -> None:
    op.drop_table("station_digest")
    op.drop_table("station_code")
