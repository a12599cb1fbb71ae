"""The web channel as coso finds it (entry point `coso.channels: web`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.registry import ChannelPlugin

if TYPE_CHECKING:
    from channels.web.settings import WebChannelSettings


def build(host: Any, cfg: WebChannelSettings) -> Any:
    from channels.web.channel import WebChannel

    return WebChannel(host.engine, cfg, host.clock.now)


def routes(host: Any, templates: Any) -> list[Any]:
    from channels.web.bulletin import bulletin_routes

    return bulletin_routes(host, templates)


# bulletin:<unit code>[-suffix] or wordpress:<site>[/post]: no spaces, control or
# direction characters, at most 200 characters after the kind.
ADDRESS = re.compile(
    r"(bulletin|wordpress):[^\s\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]{1,200}"
)


def address(text: str) -> str:
    if not ADDRESS.fullmatch(text):
        raise ValueError("not bulletin:<unit code> or wordpress:<site name>")
    return text


def tables() -> None:
    import channels.web.channel  # noqa: F401


def end_emergency(host: Any, cfg: Any, end: Any) -> str:
    from channels.web.emergency import end_emergency as end_it

    return end_it(host, cfg, end)


plugin = ChannelPlugin(
    name="web",
    title="Trang tin điện tử (bản tin, WordPress)",
    build=build,
    settings="channels.web.settings:WebChannelSettings",
    routes=routes,
    address=address,
    templates=str(Path(__file__).parent / "templates"),
    tables=tables,
    end_emergency=end_emergency,
)
