"""channel packages: schedule options instead of khong_dau, one table of early outcomes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:30:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What sms_early_status kept (the gateway's word) → (delivery state, log event), as the
# SMS channel read it when this migration was written.
_GATEWAY = {
    "sent": ("sent", "sent"),
    "delivered": ("delivered", "delivered"),
    "read": ("delivered", "delivered"),
    "undelivered": ("failed", "undelivered"),
    "failed": ("failed", "failed"),
    "canceled": ("failed", "canceled"),
}


def upgrade() -> None:
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, khong_dau FROM schedule")).all()
    for schedule_id, plain in rows:
        options = {} if plain is None else {"khong_dau": bool(plain)}
        conn.execute(
            sa.text("UPDATE schedule SET options = :o WHERE id = :i"),
            {"o": json.dumps(options), "i": schedule_id},
        )
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.alter_column("options", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("khong_dau")

    early = op.create_table(
        "early_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_early_outcome_provider_id", "early_outcome", ["provider_id"])
    parked = conn.execute(
        sa.text("SELECT sid, status, error_code, at FROM sms_early_status ORDER BY id")
    ).all()
    moved = []
    for sid, status, code, at in parked:
        if status in _GATEWAY:
            state, event = _GATEWAY[status]
            moved.append(
                {
                    "provider_id": sid,
                    "state": state,
                    "event": event,
                    "at": at,
                    "actor": "gateway",
                    "error": f"{code}: gateway error {code}" if code else None,
                    "detail": None,
                }
            )
    if moved:
        op.bulk_insert(early, moved)
    op.drop_index("ix_sms_early_status_sid", table_name="sms_early_status")
    op.drop_table("sms_early_status")


def downgrade() -> None:
    raise NotImplementedError("coso migrations go forward only")
