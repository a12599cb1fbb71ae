"""Sending to a station is handing a task to its commune's operator: every delivery is taken
at once (`sent`, event `awaiting_confirmation`) with the short code an operator may confirm
it with by SMS. Nothing has reached people until the operator says it was played."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from channels.base import Accepted, Channel, Outbound
from channels.registry import settings_of
from channels.states import SENT
from channels.station.codes import TaskSlot, codes_for
from coso.clock import as_utc
from coso.durations import parse_duration

CHANNEL = "station"
AWAITING = "awaiting_confirmation"


class StationChannel(Channel):
    name = CHANNEL
    # Handing the same task over twice reaches nobody twice: it is one delivery, one code.
    resend_safe = True

    def __init__(self, host: Any) -> None:
        self.host = host
        self.settings = settings_of(host.settings, CHANNEL)

    def send(self, message: Outbound) -> Accepted:
        slot_at = as_utc(message.extra["scheduled_for"])
        expires_at = as_utc(message.expires_at) if message.expires_at else None
        slot = TaskSlot(
            endpoint_id=message.endpoint_id,
            schedule_id=int(message.extra["schedule_id"]),
            scheduled_for=slot_at,
            unit_code=message.unit_code,
            open_until=open_until(
                slot_at, expires_at, parse_duration(self.settings.late_confirmation)
            ),
        )
        code = codes_for(self.host.engine, [slot], self.host.clock.now())[slot.key]
        return Accepted(
            state=SENT,
            event=AWAITING,
            detail=f"chờ người trực đài xác nhận; mã xác nhận qua SMS: {code}",
        )


# Without a validity an item stays open this long after its slot (for its SMS code).
OPEN_WITHOUT_VALIDITY = timedelta(days=1)


def open_until(scheduled_for: datetime, expires_at: datetime | None, late: timedelta) -> datetime:
    """Until when an operator may still confirm an item: the end of its validity and the
    late-confirmation window after it."""
    end = expires_at if expires_at is not None else scheduled_for + OPEN_WITHOUT_VALIDITY
    return end + late
