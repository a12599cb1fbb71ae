"""sms: opt-outs, schedules without diacritics, the log by endpoint and time

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_opt_out",
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )
    op.create_table(
        "sms_early_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("to", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sms_early_status") as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_early_status_sid"), ["sid"], unique=False)
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.add_column(sa.Column("khong_dau", sa.Boolean(), nullable=True))
    with op.batch_alter_table("activity_entry") as batch_op:
        batch_op.create_index("ix_activity_endpoint_at", ["endpoint_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("activity_entry") as batch_op:
        batch_op.drop_index("ix_activity_endpoint_at")
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.drop_column("khong_dau")
    op.drop_table("sms_opt_out")
    with op.batch_alter_table("sms_early_status") as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_early_status_sid"))
    op.drop_table("sms_early_status")
