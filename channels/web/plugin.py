"""The web channel as coso finds it (entry point `coso.channels: web`)."""

from __future__ import annotations

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


def tables() -> None:
    import channels.web.channel  # noqa: F401


plugin = ChannelPlugin(
    name="web",
    title="Trang tin điện tử (bản tin, WordPress)",
    build=build,
    settings="channels.web.settings:WebChannelSettings",
    routes=routes,
    templates=str(Path(__file__).parent / "templates"),
    tables=tables,
)
