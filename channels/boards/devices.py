"""What coso knows of each board (online, last seen, what it shows, a controller's
brightness, its last failure), for `coso devices` and the console."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, select, update

from channels.boards.tables import BoardDevice
from channels.endpoints import Endpoint
from coso.db import insert_ignoring_duplicates

D = BoardDevice.__table__
E = Endpoint.__table__
CHANNEL = "boards"


def ensure(conn: Connection, endpoint_ids: Sequence[int]) -> None:
    if endpoint_ids:
        conn.execute(
            insert_ignoring_duplicates(conn, D),
            [{"endpoint_id": e, "online": False} for e in sorted(set(endpoint_ids))],
        )


def set_status(conn: Connection, endpoint_ids: Sequence[int], **values: Any) -> None:
    """Set these columns on these boards (rows made as needed)."""
    ids = sorted(set(endpoint_ids))
    ensure(conn, ids)
    for start in range(0, len(ids), 5000):
        conn.execute(update(D).where(D.c.endpoint_id.in_(ids[start : start + 5000])).values(values))


def failed(conn: Connection, endpoint_id: int, reason: str, at: datetime) -> None:
    set_status(conn, [endpoint_id], online=False, last_failure=reason[:300], last_failure_at=at)


def boards(engine: Engine, kind: str | None = None) -> list[Any]:
    """Every enabled board endpoint (id, address, name, unit_code) with its status row."""
    query = (
        select(E.c.id, E.c.address, E.c.name, E.c.unit_code, D)
        .join(D, D.c.endpoint_id == E.c.id, isouter=True)
        .where(E.c.channel == CHANNEL, E.c.enabled.is_(True))
        .order_by(E.c.address)
    )
    if kind:
        query = query.where(E.c.address.startswith(f"{kind}:"))
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def by_address(conn: Connection, address: str) -> Any | None:
    return conn.execute(
        select(E.c.id, E.c.address, E.c.name, E.c.unit_code, E.c.enabled).where(
            E.c.channel == CHANNEL, E.c.address == address
        )
    ).first()


def light_schedule(periods: Sequence[tuple[str, str, int]], zone: str) -> str:
    """A brightness schedule as kept once a controller took it (its `brightness_signature`):
    the periods and the zone of their times of day."""
    return json.dumps({"zone": zone, "periods": [list(p) for p in periods]})


def brightness_at(schedule: str | None, when: datetime | None) -> int | None:
    """The percent a controller's brightness schedule (as it took it) sets at `when`, or
    None when it has none that coso gave it."""
    if not schedule or when is None:
        return None
    try:
        given = json.loads(schedule)
        zone = ZoneInfo(given["zone"])
        periods = [(str(a), str(b), int(c)) for a, b, c in given["periods"]]
    except (ValueError, KeyError, TypeError, ZoneInfoNotFoundError):
        return None  # kept by an older coso: sent again at the next check
    now = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(zone).strftime("%H:%M")
    for start, end, percent in periods:
        if start == end or start <= now < end or (end < start and (now >= start or now < end)):
            return percent
    return None


def showing_text(row: Any) -> str | None:
    """What a board shows, as the console and `coso devices` say it: the item's title, and
    a controller's brightness when it was last seen ("Tiếp công dân · độ sáng 40%")."""
    percent = brightness_at(row.brightness_signature, row.last_seen)
    light = f"độ sáng {percent}%" if percent is not None else None
    return " · ".join(t for t in (row.showing, light) if t) or None


def device_states(engine: Engine, endpoint_ids: Sequence[int]) -> dict[int, Any]:
    from channels.base import DeviceState

    found: dict[int, Any] = {}
    ids = sorted(set(endpoint_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            for r in conn.execute(select(D).where(D.c.endpoint_id.in_(ids[start : start + 5000]))):
                found[r.endpoint_id] = DeviceState(
                    online=bool(r.online),
                    last_seen=r.last_seen,
                    playing=showing_text(r),
                    last_failure=r.last_failure,
                    last_failure_at=r.last_failure_at,
                )
    for endpoint_id in ids:  # a board that never connected has said nothing yet
        found.setdefault(endpoint_id, DeviceState(online=False))
    return found
