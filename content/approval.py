"""Approving and retiring content: draft → approved → retired, recorded with who and when.
Approval is of an exact version (content.versions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, Row, select, update

from content.models import APPROVED, DRAFT, RETIRED, ContentItem
from content.versions import approve
from coso.db import write
from coso.errors import InputError

C = ContentItem.__table__
# state -> states it may be reached from
MOVES = {APPROVED: (DRAFT,), RETIRED: (DRAFT, APPROVED)}


def find_content(engine: Engine, plan_id: int, key: str) -> Row:  # type: ignore[type-arg]
    with engine.connect() as conn:
        row = conn.execute(select(C).where(C.c.plan_id == plan_id, C.c.key == key)).first()
    if row is None:
        raise InputError("content", key, "no content with this key in the plan")
    return row


def set_state(engine: Engine, plan_id: int, key: str, state: str, by: str, now: datetime) -> None:
    """Move a content item to `approved` (its newest draft version, which then goes out) or
    `retired` (nothing of it goes out any more); a backward move is refused."""
    if state == APPROVED:
        approve(engine, plan_id, key, None, by, now)
        return
    item = find_content(engine, plan_id, key)
    if item.state not in MOVES[state]:
        raise InputError("content", key, f"is {item.state}; cannot become {state}")
    with write(engine) as conn:
        conn.execute(
            update(C).where(C.c.id == item.id, C.c.state == item.state).values(state=state)
        )


def list_content(engine: Engine, plan_id: int) -> list[Row]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(select(C).where(C.c.plan_id == plan_id).order_by(C.c.id)))
