"""emergencies: one warning on every channel, by reference; test endpoints for drills; the
bulletin's pinned posts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "emergency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", TEXT(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("title", TEXT(), nullable=False),
        sa.Column("text", TEXT(), nullable=False),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("until", TIME(), nullable=True),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("state", TEXT(), nullable=False),
        sa.Column("source", TEXT(), nullable=False),
        sa.Column("declared_by", TEXT(), nullable=False),
        sa.Column("declared_at", TIME(), nullable=False),
        sa.Column("skip_opt_outs", sa.Boolean(), nullable=False),
        sa.Column("cancel_sms", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIME(), nullable=False),
        sa.Column("cancelled_at", TIME(), nullable=True),
        sa.Column("cancelled_by", TEXT(), nullable=True),
        sa.Column("note", TEXT(), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("year", "number"),
    )
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("bulletin_post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_until", TIME(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulletin_post", schema=None) as batch_op:
        batch_op.drop_column("pinned_until")
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("test")
    op.drop_table("emergency")
