"""The boards channel as coso finds it (entry point `coso.channels: boards`): screens that
open coso's board page, and Huidu LED controllers. Imported at every start: Pillow, httpx
and the web side are imported only by the hooks that use them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from channels.registry import ChannelPlugin


def build(host: Any, cfg: Any) -> Any:
    from channels.boards.channel import BoardsChannel

    return BoardsChannel(host, cfg)


def service(host: Any, channel: Any) -> Any:
    from channels.boards.service import BoardService

    return BoardService(host, channel)


def routes(host: Any, templates: Any) -> list[Any]:
    from channels.boards.web import board_routes
    from channels.registry import settings_of

    return board_routes(host, settings_of(host.settings, "boards"), templates)


def cli(app: Any) -> None:
    from channels.boards.cli import add_commands

    add_commands(app)


def device_states(engine: Any, endpoint_ids: Any) -> Any:
    from channels.boards.devices import device_states as states

    return states(engine, endpoint_ids)


def address(text: str) -> str:
    from channels.boards.addresses import address as checked

    return checked(text)


def tables() -> None:
    import channels.boards.tables  # noqa: F401


def check_item(body: str, options: Mapping[str, Any]) -> str | None:
    """A board shows an item's text (its body) or its image: one of them is needed."""
    if body.strip() or options.get("image"):
        return None
    return (
        "mục cho bảng tin không có chữ (body) và không có ảnh (options.image): bảng không có"
        " gì để hiện"
    )


def cue_ahead(cfg: Any) -> timedelta:
    from coso.durations import parse_duration

    return parse_duration(cfg.cue_ahead)


def rules(host: Any, cfg: Any) -> Any:
    from channels.boards.rules import ControllersAtTheirSlot

    return ControllersAtTheirSlot()


def end_emergency(host: Any, cfg: Any, end: Any) -> str:
    from channels.boards.emergency import end_emergency as end_it

    return end_it(host, cfg, end)


plugin = ChannelPlugin(
    name="boards",
    title="Bảng tin điện tử công cộng (màn hình, LED Huidu)",
    build=build,
    settings="channels.boards.settings:BoardSettings",
    options="channels.boards.settings:BoardOptions",
    check_item=check_item,
    address=address,
    cue_ahead=cue_ahead,
    rules=rules,
    service=service,
    routes=routes,
    templates=str(Path(__file__).parent / "templates"),
    cli=cli,
    tables=tables,
    device_states=device_states,
    migrations=str(Path(__file__).parent / "migrations"),
    end_emergency=end_emergency,
)
