"""What the sender keeps back on the boards channel: an item sent ahead of its slot (the
timer's cue) goes to screens at once, which put it on at its time themselves; an LED
controller shows whatever programme it is given as soon as it has it, so its item waits in
coso until the slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.base import Outbound, Outcome
from channels.boards.addresses import parse
from channels.host import Hold
from channels.states import RETRY_WAIT
from coso.clock import as_utc

ACTOR = "dispatcher:boards"


class ControllersAtTheirSlot:
    def hold(self, now: datetime) -> Hold | None:
        return None

    def screen(
        self, messages: list[Outbound], now: datetime
    ) -> tuple[list[Outbound], list[Outcome]]:
        going, held = [], []
        for m in messages:
            slot = m.extra.get("scheduled_for")
            if slot is not None and as_utc(slot) > now and _controller(m.address):
                held.append(
                    Outcome(
                        m.delivery_id,
                        RETRY_WAIT,
                        "held",
                        now,
                        ACTOR,
                        detail="bảng LED nhận chương trình đúng giờ phát",
                        retry_at=as_utc(slot),
                    )
                )
            else:
                going.append(m)
        return going, held

    def record(self, conn: Any, messages: list[Outbound], outcomes: list[Outcome]) -> None:
        return None


def _controller(address: str) -> bool:
    try:
        return parse(address).kind != "screen"
    except ValueError:
        return False  # the channel refuses it, naming why
