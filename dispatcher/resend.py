"""Sending failed deliveries again, when a person asks: only `failed` ones, only while they
are still valid, each the same delivery (never a second one to the same endpoint). The one
move back a delivery makes, so it is here on its own and logged with who asked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, and_, or_, update

from channels.states import FAILED, PENDING
from coso.db import write
from dispatcher.models import Delivery
from dispatcher.transitions import LOG_SOURCE, append_log, log_rows

D = Delivery.__table__


def resend_failed(
    engine: Engine,
    plan_id: int,
    now: datetime,
    actor: str,
    unit_codes: frozenset[str] | None = None,
) -> int:
    """Failed deliveries of the plan (of these units; None: all) go back to `pending`, with
    their attempts counted anew. Those past their validity stay failed: what was due
    yesterday is not news today. The rules of the channel apply again at sending (an SMS
    number that opted out is not sent to)."""
    condition = and_(
        D.c.plan_id == plan_id,
        D.c.state == FAILED,
        or_(D.c.expires_at.is_(None), D.c.expires_at > now),
    )
    if unit_codes is not None:
        condition = and_(condition, D.c.unit_code.in_(sorted(unit_codes)))
    with write(engine) as conn:
        rows = conn.execute(
            update(D)
            .where(condition)
            .values(
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                claimed_by=None,
                updated_at=now,
            )
            .returning(*LOG_SOURCE)
        ).all()
        append_log(
            conn,
            log_rows(rows, at=now, event="resend", state=PENDING, actor=actor, detail="gửi lại"),
        )
    return len(rows)
