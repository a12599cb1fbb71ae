"""A commune operator orders priority items that share a slot ("Thứ tự phát" on Hôm nay):
one tap moves an item one place up, before the slot goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException
from fastapi.responses import RedirectResponse, Response

from channels.host import ChannelHost
from coso.access import CONFIRM, Access
from coso.clock import as_utc, zone
from coso.config import Settings
from coso.errors import InputError
from coso.units import unit_tree
from dispatcher.clashes import clash_of
from schedules.running_order import move_up_in


def parse_slot(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("slot", text, "không phải một giờ phát") from None
    if at.tzinfo is None:
        raise InputError("slot", text, "giờ phát phải có múi giờ")
    return as_utc(at)


def parse_schedule_id(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 9:
        raise InputError("schedule_id", text, "không phải mã lịch")
    return int(text.strip())


def ordering_router(settings: Settings, signed_in: Any, host: ChannelHost) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    tz = settings.timer.default_zone

    @router.post("/units/{code}/order", response_model=None)
    def move_up(
        code: str,
        unit: str = Form(""),
        slot: str = Form(""),
        schedule_id: str = Form(""),
        access: Access = Depends(signed_in),
    ) -> Response:
        """Move a schedule's item one place up in its commune's slot; back to Hôm nay."""
        access.require_unit(CONFIRM, code)
        if unit:
            access.require_unit(CONFIRM, unit)
        try:
            if not unit or unit not in unit_tree(host.engine).below(code):
                raise InputError("unit", unit, f"không phải một đơn vị thuộc {code}")
            at = parse_slot(slot)
            sid = parse_schedule_id(schedule_id)
            if at <= host.clock.now():
                raise InputError("slot", slot, "giờ phát này đã qua: không đổi thứ tự được nữa")
            clash = clash_of(host, unit, at, sid, tz)
            if clash is None:
                raise InputError(
                    "schedule_id",
                    schedule_id,
                    "không phải một tin ưu tiên trùng giờ còn chờ phát ở giờ này",
                )
            if clash.schedule_ids[0] == sid:
                message = "Tin này đã xếp đầu tiên"
            else:
                move_up_in(
                    host.engine, unit, at, clash.schedule_ids, sid, access.login, host.clock.now()
                )
                message = "Đã đổi thứ tự phát"
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
        day = at.astimezone(zone(tz)).strftime("%d/%m/%Y")
        return RedirectResponse(
            f"/units/{code}/today?day={quote(day)}&ok={quote(message)}", status_code=303
        )

    return router
