"""The devices of the units a user reaches: each endpoint, and what its device last said of
itself (online, last seen, playing, last failure) where its channel reports that."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Engine

from coso.access import READ, Access
from coso.config import Settings
from coso.units import unit_names
from dispatcher.devices import DeviceRow, device_rows
from dispatcher.web.console import Pages, privacy

MOST_SHOWN = 500


def devices_in_scope(engine: Engine, access: Access, unit: str | None = None) -> list[DeviceRow]:
    """The devices of the units `access` reaches (of `unit` when given)."""
    units = None if unit or access.units is None else access.units
    rows = device_rows(engine, unit=unit, units=units, most=MOST_SHOWN * 4)
    return [r for r in rows if access.reaches(r.unit_code)][:MOST_SHOWN]


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
