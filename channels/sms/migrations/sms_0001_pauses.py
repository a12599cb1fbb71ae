"""sms channel: quiet-hours pauses logged, one per schedule and night (a branch of its own)

Revision ID: sms_0001
Revises:
Create Date: 2026-12-06 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "sms_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("coso_sms",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_pause",
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", "until"),
    )


def downgrade() -> None:
    op.drop_table("sms_pause")
