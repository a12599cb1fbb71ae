"""An emergency that ends early on the boards: its items end now, and every board goes back
to its programme."""

from __future__ import annotations

from typing import Any

from channels.registry import EmergencyEnd


def end_emergency(host: Any, _cfg: Any, end: EmergencyEnd) -> str:
    from channels.boards.programme import end_items

    ended = sum(end_items(host, sid, end.actor, end.now) for sid in end.schedule_ids)
    return f"đã gỡ {ended} tin khỏi bảng"
