"""The board channel's plugin: settings, a sender and the board's report of what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from channels.base import Accepted, Channel, Outbound, Outcome
from channels.registry import ChannelPlugin
from channels.settings import ChannelLimits


class BoardSettings(ChannelLimits):
    controller: str = ""  # where the boards' controller is; empty: not set up
    seconds: int = Field(30, ge=1)


class BoardChannel(Channel):
    """Shows each message on a board. The board reports `displayed` by the id it gave the
    message, and it does so at once: before coso has recorded that id."""

    name = "board"
    resend_safe = True
    reports_by_provider_id = True

    def __init__(self, host: Any, settings: BoardSettings) -> None:
        self.host, self.settings = host, settings

    def send(self, message: Outbound) -> Accepted:
        from sqlalchemy import insert

        from coso.db import write
        from coso_board.tables import BoardShown  # type: ignore[import-not-found]

        shown_as = f"board-msg-{message.delivery_id}"
        with write(self.host.engine) as conn:  # what the board was given, in its own table
            conn.execute(
                insert(BoardShown.__table__),
                {
                    "delivery_id": message.delivery_id,
                    "board": message.address,
                    "text": message.body,
                },
            )
        self.host.receive(
            [
                Outcome(
                    None,
                    "displayed",
                    "displayed",
                    self.host.clock.now(),
                    f"board:{message.address}",
                    provider_id=shown_as,
                    detail=f"on screen for {self.settings.seconds}s",
                    inbound=True,
                )
            ]
        )
        return Accepted(state="sent", event="sent", provider_id=shown_as)


def tables() -> None:
    import coso_board.tables  # noqa: F401  # type: ignore[import-not-found]


plugin = ChannelPlugin(
    name="board",
    title="Bảng điện tử công cộng (thử)",
    build=lambda host, cfg: BoardChannel(host, cfg),
    settings=BoardSettings,
    configured=lambda cfg: bool(cfg.controller),
    not_configured_hint="set channels.board.controller",
    tables=tables,
    migrations=str(Path(__file__).parent / "migrations"),
)
