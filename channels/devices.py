"""What coso knows of each loudspeaker player: online or not, last seen, what it plays,
its last failure. Written from the player's status and events; read by `coso devices`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, select, update
from sqlmodel import Field, SQLModel

from channels.endpoints import Endpoint
from coso.db import insert_ignoring_duplicates


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


def ensure_rows(conn: Connection, endpoint_ids: Sequence[int]) -> None:
    if endpoint_ids:
        conn.execute(
            insert_ignoring_duplicates(conn, T), [{"endpoint_id": e} for e in set(endpoint_ids)]
        )


def update_players(conn: Connection, changes: dict[int, dict[str, Any]]) -> None:
    """Apply per-player column changes (endpoint id → values), creating rows as needed."""
    if not changes:
        return
    ensure_rows(conn, list(changes))
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for endpoint_id, values in changes.items():
        by_columns.setdefault(tuple(sorted(values)), []).append({"eid": endpoint_id, **values})
    for columns, rows in by_columns.items():
        stmt = (
            update(T)
            .where(T.c.endpoint_id == bindparam("eid"))
            .values({c: bindparam(c) for c in columns})
        )
        conn.execute(stmt, rows)


def online_players(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.scalars(select(T.c.endpoint_id).where(T.c.online.is_(True))))


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
