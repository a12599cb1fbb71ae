"""speech for text-only content: which voice spoke an item's audio (none: uploaded audio)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: on SQLite a batch would copy the tables that others reference.
    text = sqlmodel.sql.sqltypes.AutoString()
    op.add_column("media_asset", sa.Column("voice", text, nullable=True))
    op.add_column("content_version", sa.Column("media_voice", text, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("coso migrations go forward only")
