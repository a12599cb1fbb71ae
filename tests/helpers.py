"""Small helpers shared by the tests: reads, waiting, and a channel whose far end answers
later."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from channels import registry
from channels.base import Accepted, Channel, Outbound
from channels.states import SENT
from coso.config import Settings
from dispatcher.models import Delivery

SLOT = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)  # Mon 03/05/2021 06:00 in Hồ Chí Minh


def delivery_states(engine: Engine) -> dict[str, int]:
    """How many deliveries are in each state."""
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    return {state: n for state, n in rows}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Accepting(Channel):
    """A channel whose far end answers later (a player, a gateway): every send is `sent`;
    what became of it comes back through the inbound path, as the test decides."""

    resend_safe = True

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = registry.settings_of(settings, name)  # as the real one keeps them

    def send(self, message: Outbound) -> Accepted:
        return Accepted(state=SENT, event="sent", provider_id=f"SM{message.delivery_id:030d}")
