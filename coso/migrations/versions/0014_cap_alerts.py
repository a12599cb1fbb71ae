"""CAP alerts in: the log of received documents, and where endpoints stand

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
ACTED_ON_SQL = "outcome NOT IN ('refused', 'repeated')"


def upgrade() -> None:
    with op.batch_alter_table("endpoint") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=True))
    op.create_table(
        "cap_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("via", _TEXT(), nullable=False),
        sa.Column("origin", _TEXT(), nullable=False),
        sa.Column("sender", _TEXT(), nullable=True),
        sa.Column("identifier", _TEXT(), nullable=True),
        sa.Column("sent", _TEXT(), nullable=True),
        sa.Column("status", _TEXT(), nullable=True),
        sa.Column("msg_type", _TEXT(), nullable=True),
        sa.Column("severity", _TEXT(), nullable=True),
        sa.Column("headline", _TEXT(), nullable=False),
        sa.Column("text", _TEXT(), nullable=False),
        sa.Column("expires", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("outcome", _TEXT(), nullable=False),
        sa.Column("reason", _TEXT(), nullable=False),
        sa.Column("emergency_ref", _TEXT(), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("decided_by", _TEXT(), nullable=True),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cap_alert_outcome", "cap_alert", ["outcome"])
    op.create_index("ix_cap_alert_sender_identifier", "cap_alert", ["sender", "identifier"])
    op.create_index(
        "ux_cap_alert_acted_on",
        "cap_alert",
        ["sender", "identifier"],
        unique=True,
        sqlite_where=sa.text(ACTED_ON_SQL),
        postgresql_where=sa.text(ACTED_ON_SQL),
    )


def downgrade() -> None:
    op.drop_index("ux_cap_alert_acted_on", "cap_alert")
    op.drop_index("ix_cap_alert_sender_identifier", "cap_alert")
    op.drop_index("ix_cap_alert_outcome", "cap_alert")
    op.drop_table("cap_alert")
    with op.batch_alter_table("endpoint") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
