"""board channel: what each board was given to show (a branch of its own)

Revision ID: board_0001
Revises:
Create Date: 2026-12-02 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "board_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("coso_board",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "board_shown",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("board", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_board_shown_delivery_id", "board_shown", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("board_shown")
