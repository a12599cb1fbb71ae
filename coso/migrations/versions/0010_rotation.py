"""schedules that rotate through a pool of content items

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        batch.add_column(sa.Column("rotation", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("rotation_policy", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(
            sa.Column("rotation_weights", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        batch.drop_column("rotation_weights")
        batch.drop_column("rotation_policy")
        batch.drop_column("rotation")
