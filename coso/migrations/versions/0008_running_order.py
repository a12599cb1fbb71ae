"""the order a commune's operator sets for priority items sharing a slot

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "running_order",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("unit_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("slot_utc", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("schedule_ids", sa.JSON(), nullable=False),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("set_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("unit_code", "slot_utc"),
    )
    op.create_index("ix_running_order_unit_code", "running_order", ["unit_code"])


def downgrade() -> None:
    op.drop_index("ix_running_order_unit_code", "running_order")
    op.drop_table("running_order")
