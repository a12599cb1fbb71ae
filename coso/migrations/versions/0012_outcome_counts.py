"""the report's outcome counts, kept as the log is written, and an index of the entries
that reached people

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00.000000
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REACHED = "state IN ('played', 'confirmed', 'delivered', 'displayed')"

# Each delivery under its last entry with a state, with its slot and its plan's zone (as
# dispatcher.outcome_counts counts the log for this revision).
FROM_LOG = """
SELECT a.plan_id, p.zone, a.channel, coalesce(a.unit_code, ''), o.scheduled_for, a.state,
       a.event, coalesce(a.content_id, 0), count(*)
FROM (SELECT plan_id, delivery_id, max(id) AS id FROM activity_entry
      WHERE delivery_id IS NOT NULL AND state IS NOT NULL
      GROUP BY plan_id, delivery_id) AS last
JOIN activity_entry AS a ON a.id = last.id
JOIN occurrence AS o ON o.id = a.occurrence_id
JOIN plan AS p ON p.id = a.plan_id
GROUP BY a.plan_id, p.zone, a.channel, coalesce(a.unit_code, ''), o.scheduled_for, a.state,
         a.event, coalesce(a.content_id, 0)
"""


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString()
    table = op.create_table(
        "outcome_count",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("zone", text, nullable=False),
        sa.Column("channel", text, nullable=False),
        sa.Column("unit_code", text, nullable=False),
        sa.Column("piece", sa.Date(), nullable=False),
        sa.Column("state", text, nullable=False),
        sa.Column("event", text, nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "plan_id",
            "zone",
            "channel",
            "unit_code",
            "piece",
            "state",
            "event",
            "content_id",
            "day",
        ),
        sqlite_with_rowid=False,
    )
    pieces = op.create_table(
        "outcome_count_piece",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("zone", text, nullable=False),
        sa.Column("channel", text, nullable=False),
        sa.Column("unit_code", text, nullable=False),
        sa.Column("piece", sa.Date(), nullable=False),
        sa.Column("state", text, nullable=False),
        sa.Column("event", text, nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "plan_id", "zone", "channel", "unit_code", "piece", "state", "event", "content_id"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_activity_reached",
        "activity_entry",
        ["plan_id", "endpoint_id", "unit_code", "occurrence_id", "delivery_id"],
        sqlite_where=sa.text(REACHED),
        postgresql_where=sa.text(REACHED),
    )
    counts: Counter[tuple[object, ...]] = Counter()
    for plan, zone, channel, unit, slot, state, event, content, n in op.get_bind().execute(
        sa.text(FROM_LOG)
    ):
        if isinstance(slot, str):  # SQLite
            slot = datetime.fromisoformat(slot)
        if slot.tzinfo is None:
            slot = slot.replace(tzinfo=UTC)
        day = slot.astimezone(ZoneInfo(zone)).date()
        piece = max(day - timedelta(days=day.weekday()), day.replace(day=1))
        counts[(plan, zone, channel, unit, piece, state, event, content, day)] += n
    names = (
        "plan_id",
        "zone",
        "channel",
        "unit_code",
        "piece",
        "state",
        "event",
        "content_id",
        "day",
    )
    rows = [dict(zip(names, key, strict=True)) | {"n": n} for key, n in counts.items()]
    per_piece: Counter[tuple[object, ...]] = Counter()
    for key, n in counts.items():
        per_piece[key[:8]] += n
    if rows:
        op.bulk_insert(table, rows)
        op.bulk_insert(
            pieces,
            [dict(zip(names, key)) | {"n": n} for key, n in per_piece.items()],  # noqa: B905
        )


def downgrade() -> None:
    op.drop_index("ix_activity_reached", "activity_entry")
    op.drop_table("outcome_count_piece")
    op.drop_table("outcome_count")
