"""What each board shows now: its items from their slot until they end, emergencies alone
while any lasts, then priority items, then the rest, each in its schedule's order."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from channels.boards.tables import BoardItem

T = BoardItem.__table__
EMERGENCY = 2
# What a programme needs of an item (`entry`), and no more: a slot's push reads thousands.
SHOWN = (
    T.c.delivery_id,
    T.c.endpoint_id,
    T.c.title,
    T.c.text,
    T.c.image,
    T.c.seconds,
    T.c.scroll,
    T.c.priority,
    T.c.starts_at,
    T.c.ends_at,
)


def stamp(when: datetime) -> str:
    """A UTC time as boards read it: 2026-12-07T08:00:00.000000Z."""
    return when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def entry(row: Any) -> dict[str, Any]:
    """One item as a board gets it."""
    return {
        "id": row.delivery_id,
        "title": row.title,
        "text": row.text,
        "image": f"/boards/images/{row.image}" if row.image else None,
        "seconds": row.seconds,
        "scroll": bool(row.scroll),
        "priority": ("normal", "priority", "emergency")[row.priority],
        "starts_at": stamp(row.starts_at),
        "ends_at": stamp(row.ends_at),
    }


def programmes(
    conn: Connection, endpoint_ids: Sequence[int], now: datetime, emergencies_alone: bool = True
) -> dict[int, list[dict[str, Any]]]:
    """Board → the items it shows now: emergencies alone while any lasts (a controller's
    programme), or all of them (a screen's, which drops each item at its end itself and
    puts back the others when an emergency ends, even offline)."""
    found: dict[int, list[Any]] = defaultdict(list)
    ids = sorted(set(endpoint_ids))
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            select(*SHOWN)
            .where(
                T.c.endpoint_id.in_(ids[start : start + 5000]),
                T.c.ends_at > now,
                T.c.ended_at.is_(None),
            )
            .order_by(T.c.priority.desc(), T.c.position, T.c.starts_at, T.c.delivery_id)
        )
        for row in rows:
            found[row.endpoint_id].append(row)
    out: dict[int, list[dict[str, Any]]] = {}
    for endpoint_id in ids:
        rows = found.get(endpoint_id, [])
        if emergencies_alone and any(r.priority == EMERGENCY for r in rows):
            rows = [r for r in rows if r.priority == EMERGENCY]
        out[endpoint_id] = [entry(r) for r in rows]
    return out


def signature(items: list[dict[str, Any]]) -> str:
    """A short digest of a programme: what a controller was last given."""
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:32]


def end_items(host: Any, schedule_id: int, by: str, now: datetime) -> int:
    """End a schedule's items on every board now; how many. Logged once for the schedule."""
    from sqlalchemy import update

    from coso.db import write

    with write(host.engine) as conn:
        done = conn.execute(
            update(T)
            .where(T.c.schedule_id == schedule_id, T.c.ended_at.is_(None), T.c.ends_at > now)
            .values(ended_at=now, ended_by=by)
        ).rowcount
        plan = conn.scalar(select(T.c.delivery_id).where(T.c.schedule_id == schedule_id).limit(1))
    if done and plan is not None:
        row = host.delivery(plan)
        host.note(
            [
                {
                    "at": now,
                    "plan_id": row.plan_id if row is not None else None,
                    "schedule_id": schedule_id,
                    "channel": "boards",
                    "event": "ended",
                    "actor": by,
                    "detail": f"kết thúc trên {done} bảng trước khi hết hiệu lực",
                }
            ]
        )
    return int(done or 0)
