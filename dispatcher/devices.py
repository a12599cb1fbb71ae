"""Every channel's devices: each enabled endpoint and what its device last said of itself
(online, last seen, what it plays or shows, its last failure), from the channels that
report it (the `device_states` hook). The console's device page and `coso devices` read it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from channels import registry
from channels.endpoints import Endpoint

E = Endpoint.__table__


@dataclass(frozen=True)
class DeviceRow:
    endpoint_id: int
    channel: str
    name: str
    address: str
    unit_code: str | None
    online: bool | None  # None: its channel reports nothing
    last_seen: datetime | None
    playing: str | None
    last_failure: str | None
    last_failure_at: datetime | None = None

    @property
    def status(self) -> str | None:
        """online / offline / never_seen (coso.labels words them), or None for a channel
        whose devices report nothing."""
        if self.online is None:
            return None
        if self.online:
            return "online"
        return "offline" if self.last_seen else "never_seen"


def device_rows(
    engine: Engine,
    *,
    unit: str | None = None,
    units: Collection[str] | None = None,
    channel: str | None = None,
    most: int | None = None,
) -> list[DeviceRow]:
    """Enabled endpoints (of `unit`, else of `units` when given; of `channel` when given),
    by unit, channel and address, with their devices' states."""
    query = select(E).where(E.c.enabled.is_(True)).order_by(E.c.unit_code, E.c.channel, E.c.address)
    if unit:
        query = query.where(E.c.unit_code == unit)
    elif units is not None:
        query = query.where(E.c.unit_code.in_(sorted(units)))
    if channel:
        query = query.where(E.c.channel == channel)
    if most is not None:
        query = query.limit(most)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    states: dict[int, Any] = {}
    for plugin in registry.with_hook("device_states"):
        ids = [r.id for r in rows if r.channel == plugin.name]
        if ids:
            states.update(plugin.device_states(engine, ids))  # type: ignore[misc]
    found = []
    for r in rows:
        s = states.get(r.id)
        found.append(
            DeviceRow(
                r.id,
                r.channel,
                r.name,
                r.address,
                r.unit_code,
                None if s is None else s.online,
                None if s is None else s.last_seen,
                None if s is None else s.playing,
                None if s is None else s.last_failure,
                None if s is None else s.last_failure_at,
            )
        )
    return found
