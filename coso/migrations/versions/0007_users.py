"""users of the console: password hashes, roles, units

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coso_user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(), nullable=False, unique=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("unit_codes", sa.JSON(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), sa.ForeignKey("organisation.id")),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString()),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coso_user")
