"""loudspeaker channel: each player's key generation, bumped when its credentials are revoked

Revision ID: loudspeaker_0001
Revises:
Create Date: 2026-12-06 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "loudspeaker_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("loudspeaker",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "player_key",
        sa.Column("player", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("player"),
    )


def downgrade() -> None:
    op.drop_table("player_key")
