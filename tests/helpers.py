"""Small read helpers shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from dispatcher.models import Delivery

SLOT = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)  # Mon 03/05/2021 06:00 in Hồ Chí Minh


def delivery_states(engine: Engine) -> dict[str, int]:
    """How many deliveries are in each state."""
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    return {state: n for state, n in rows}
