"""The station channel as coso finds it (entry point `coso.channels: station`): commune
radio stations that no computer controls (FM, wired), whose deliveries are tasks confirmed
by the commune's operator."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from channels.registry import ChannelPlugin, PersonConfirms
from channels.states import CONFIRMED, EXPIRED, FAILED, MISSED, UNCONFIRMED
from channels.station.reasons import REASONS


def build(host: Any, _cfg: Any) -> Any:
    from channels.station.channel import StationChannel

    return StationChannel(host)


def service(host: Any, channel: Any) -> Any:
    from channels.station.service import StationService

    return StationService(host, channel)


def inbound_text(host: Any, sender: str, body: str, at: datetime) -> str | None:
    from channels.station.replies import answer_text

    return answer_text(host, sender, body, at)


def tasks(host: Any, unit_code: str, day: Any) -> list[Any]:
    from channels.station.tasks import station_tasks

    return station_tasks(host, unit_code, day)


def confirm(host: Any, delivery_id: int, actor: str, played_at: datetime | None) -> Any:
    from channels.station.confirmations import confirm as confirmed

    return confirmed(host, delivery_id, actor, played_at, via="bảng điều khiển")


def could_not_play(host: Any, delivery_id: int, actor: str, reason: str, note: str) -> Any:
    from channels.station.confirmations import could_not_play as not_played

    return not_played(host, delivery_id, actor, reason, note, via="bảng điều khiển")


def cli(app: Any) -> None:
    from channels.station.cli import station_app

    app.add_typer(station_app, name="station")


def tables() -> None:
    import channels.station.codes
    import channels.station.digest  # noqa: F401


# station:<unit code>[-suffix], e.g. station:06040 or station:06040-fm
ADDRESS = re.compile(r"station:[0-9]{2,5}(-[A-Za-z0-9_]{1,40})?")


def address(text: str) -> str:
    if not ADDRESS.fullmatch(text):
        raise ValueError("not station:<unit code> or station:<unit code>-<suffix> (e.g. -fm)")
    return text


plugin = ChannelPlugin(
    name="station",
    title="Đài truyền thanh FM/hữu tuyến (người trực xác nhận)",
    build=build,
    plays_in_turn=True,
    settings="channels.station.settings:StationSettings",
    # Nobody's word came in time (unconfirmed), or coso was not running (missed, expired):
    # the operator may still say what happened, for channels.station.late_confirmation.
    extra_moves={
        CONFIRMED: (UNCONFIRMED, MISSED, EXPIRED),
        FAILED: (UNCONFIRMED, MISSED, EXPIRED),
    },
    address=address,
    service=service,
    inbound_text=inbound_text,
    confirmed_by_people=PersonConfirms(tasks, confirm, could_not_play, REASONS),
    cli=cli,
    tables=tables,
    migrations=str(Path(__file__).parent / "migrations"),
)
