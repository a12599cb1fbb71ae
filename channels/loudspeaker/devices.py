"""What coso knows of each loudspeaker player: online or not, last seen, what it plays,
its last failure. Written from the player's status and events; read by `coso devices`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select, text, update
from sqlmodel import Field, SQLModel

from channels.endpoints import Endpoint
from coso.db import insert_ignoring_duplicates, sqlite_time


class PlayerStatus(SQLModel, table=True):
    __tablename__ = "player_status"

    endpoint_id: int = Field(foreign_key="endpoint.id", primary_key=True)
    online: bool = False
    status_at: datetime | None = None  # when the player last said online/offline
    last_seen: datetime | None = None  # any message from it
    playing: str | None = None
    playing_since: datetime | None = None
    last_failure: str | None = None
    last_failure_at: datetime | None = None


T = PlayerStatus.__table__
CHANNEL = "loudspeaker"


def ensure_rows(conn: Connection, endpoint_ids: Sequence[int]) -> None:
    if endpoint_ids:
        conn.execute(
            insert_ignoring_duplicates(conn, T), [{"endpoint_id": e} for e in set(endpoint_ids)]
        )


# Every column a change may set, with its PostgreSQL type; a change carries a bit per
# column it sets, and the others keep their value.
_COLUMNS = (
    ("online", "boolean"),
    ("status_at", "timestamptz"),
    ("last_seen", "timestamptz"),
    ("playing", "varchar"),
    ("playing_since", "timestamptz"),
    ("last_failure", "varchar"),
    ("last_failure_at", "timestamptz"),
)


@cache
def _bulk_update(dialect: str) -> Any:
    """One UPDATE for any number of players (their changes as arrays or one JSON array)."""
    sets = ", ".join(
        f"{c} = CASE WHEN (u.m & {1 << i}) <> 0 THEN u.{c} ELSE player_status.{c} END"
        for i, (c, _) in enumerate(_COLUMNS)
    )
    names = ", ".join(c for c, _ in _COLUMNS)
    if dialect == "postgresql":
        arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _COLUMNS)
        rows = (
            f"unnest(CAST(:eid AS integer[]), CAST(:m AS integer[]), {arrays}) "
            f"AS u(eid, m, {names})"
        )
    else:
        fields = ", ".join(
            f"json_extract(value, '$[{i + 2}]') AS {c}" for i, (c, _) in enumerate(_COLUMNS)
        )
        rows = (
            "(SELECT json_extract(value, '$[0]') AS eid, json_extract(value, '$[1]') AS m, "
            f"{fields} FROM json_each(:rows)) AS u"
        )
    return text(f"UPDATE player_status SET {sets} FROM {rows} WHERE endpoint_id = u.eid")


def update_players(
    conn: Connection, changes: dict[int, dict[str, Any]], have_rows: set[int] | None = None
) -> None:
    """Apply per-player column changes (endpoint id → values), creating rows as needed.
    `have_rows`: players known to have a row already (those created here are added)."""
    if not changes:
        return
    new = changes.keys() - have_rows if have_rows is not None else set(changes)
    ensure_rows(conn, list(new))
    if have_rows is not None:
        have_rows |= new
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        for endpoint_id, values in changes.items():
            conn.execute(update(T).where(T.c.endpoint_id == endpoint_id).values(values))
        return
    masks = [
        sum(1 << i for i, (c, _) in enumerate(_COLUMNS) if c in values)
        for values in changes.values()
    ]
    if dialect == "postgresql":
        params: dict[str, Any] = {"eid": list(changes), "m": masks}
        for c, _ in _COLUMNS:
            params[c] = [values.get(c) for values in changes.values()]
        conn.execute(_bulk_update(dialect), params)
        return

    def cell(value: Any) -> Any:
        return sqlite_time(value) if isinstance(value, datetime) else value

    table = [
        [eid, mask, *(cell(values.get(c)) for c, _ in _COLUMNS)]
        for (eid, values), mask in zip(changes.items(), masks, strict=True)
    ]
    conn.execute(_bulk_update(dialect), {"rows": json.dumps(table)})


def player_count(engine: Engine) -> int:
    """Enabled loudspeaker endpoints."""
    E = Endpoint.__table__
    with engine.connect() as conn:
        return (
            conn.scalar(select(func.count()).where(E.c.channel == CHANNEL, E.c.enabled.is_(True)))
            or 0
        )


def online_players() -> Any:
    """The endpoint ids of players online now, as a query to nest in another."""
    return select(T.c.endpoint_id).where(T.c.online.is_(True))


def list_players(engine: Engine, unit: str | None = None) -> list[Row[Any]]:
    E = Endpoint.__table__
    query = (
        select(E.c.id, E.c.address, E.c.name, E.c.unit_code, T)
        .join(T, T.c.endpoint_id == E.c.id, isouter=True)
        .where(E.c.channel == "loudspeaker")
        .order_by(E.c.address)
    )
    if unit:
        query = query.where(E.c.unit_code == unit)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def device_states(engine: Engine, endpoint_ids: Sequence[int]) -> dict[int, Any]:
    """The console's view of these players (channels.base.DeviceState by endpoint id)."""
    from channels.base import DeviceState

    found: dict[int, Any] = {}
    ids = sorted(set(endpoint_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            for r in conn.execute(select(T).where(T.c.endpoint_id.in_(ids[start : start + 5000]))):
                found[r.endpoint_id] = DeviceState(
                    online=bool(r.online),
                    last_seen=r.last_seen,
                    playing=r.playing,
                    last_failure=r.last_failure,
                    last_failure_at=r.last_failure_at,
                )
    return found
