"""`coso devices`: every channel's devices, as the console's device page lists them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from channels import registry
from coso.clock import local_text
from coso.commands import current_settings, guard, open_database, out
from coso.errors import InputError
from coso.labels import device_status_label
from coso.names import check_arguments
from dispatcher.devices import device_rows


@guard
def devices_command(
    unit: Annotated[str | None, typer.Option(help="Only the devices of this unit.")] = None,
    channel: Annotated[
        str | None, typer.Option(help="Only this channel's devices (loudspeaker, boards, …).")
    ] = None,
) -> None:
    """Devices of every channel: online or not, last seen, what each plays or shows, its
    last failure (for the channels whose devices report them)."""
    check_arguments(unit=unit, channel=channel)
    if channel is not None and channel not in registry.plugins():
        known = ", ".join(sorted(registry.plugins()))
        raise InputError("--channel", channel, f"không có kênh này (có: {known})")
    settings = current_settings()
    engine = open_database(settings)
    tz = settings.timer.default_zone
    table = Table("kênh", "thiết bị", "đơn vị", "trạng thái", "thấy lần cuối", "đang phát/hiện",
                  "lỗi gần nhất")  # fmt: skip
    for r in device_rows(engine, unit=unit, channel=channel):
        failure = r.last_failure or ""
        if r.last_failure and r.last_failure_at:
            failure = f"{local_text(r.last_failure_at, tz)}: {r.last_failure}"
        table.add_row(
            r.channel,
            r.address,
            r.unit_code or "",
            device_status_label(r.status) if r.status else "",
            local_text(r.last_seen, tz) if r.last_seen else "",
            r.playing or "",
            failure,
        )
    out.print(table)
