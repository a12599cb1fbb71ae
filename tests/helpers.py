"""Small read helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

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
