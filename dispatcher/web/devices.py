"""The devices of the units a user reaches: each endpoint, and what its device last said of
itself (online, last seen, playing, last failure) where its channel reports that."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Engine, select

from channels import registry
from channels.endpoints import Endpoint
from coso.access import READ, Access
from coso.config import Settings
from coso.units import unit_names
from dispatcher.web.console import Pages, privacy

E = Endpoint.__table__
MOST_SHOWN = 500


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


def devices_in_scope(engine: Engine, access: Access, unit: str | None = None) -> list[DeviceRow]:
    query = select(E).where(E.c.enabled.is_(True)).order_by(E.c.unit_code, E.c.channel, E.c.address)
    if unit:
        query = query.where(E.c.unit_code == unit)
    elif access.units is not None:
        query = query.where(E.c.unit_code.in_(sorted(access.units)))
    with engine.connect() as conn:
        rows = [r for r in conn.execute(query.limit(MOST_SHOWN * 4)) if access.reaches(r.unit_code)]
    rows = rows[:MOST_SHOWN]
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
            )
        )
    return found


def devices_router(engine: Engine, settings: Settings, page: Pages, signed_in: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/devices", response_class=HTMLResponse)
    def devices(
        request: Request, unit: str | None = None, access: Access = Depends(signed_in)
    ) -> HTMLResponse:
        if unit:
            access.require_unit(READ, unit)
        else:
            access.require(READ)
        rows = devices_in_scope(engine, access, unit)
        names = unit_names(engine, {r.unit_code for r in rows if r.unit_code})
        return page(
            request,
            "devices.html",
            {"rows": rows, "units": names, "unit": unit, "zone": settings.timer.default_zone},
        )

    @router.get("/devices.json")
    def devices_json(unit: str | None = None, access: Access = Depends(signed_in)) -> JSONResponse:
        if unit:
            access.require_unit(READ, unit)
        else:
            access.require(READ)
        hide = privacy(access)
        return JSONResponse(
            [
                {
                    "channel": r.channel,
                    "name": r.name,
                    "address": hide(r.address),
                    "unit": r.unit_code,
                    "online": r.online,
                    "last_seen": r.last_seen.isoformat() if r.last_seen else None,
                    "playing": r.playing,
                    "last_failure": r.last_failure,
                }
                for r in devices_in_scope(engine, access, unit)
            ]
        )

    return router
