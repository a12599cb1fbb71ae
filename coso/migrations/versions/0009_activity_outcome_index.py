"""an index for the report: each delivery's last log entry with a state, per plan

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_activity_outcome", "activity_entry", ["plan_id", "delivery_id", "id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_activity_outcome", "activity_entry")
