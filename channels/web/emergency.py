"""An emergency that ends early on the bulletin: its posts stay, no longer pinned."""

from __future__ import annotations

from typing import Any

from channels.registry import EmergencyEnd
from coso.db import write


def end_emergency(host: Any, _cfg: Any, end: EmergencyEnd) -> str:
    from channels.web.channel import BulletinPost

    table = BulletinPost.__table__
    with write(host.engine) as conn:
        unpinned = conn.execute(
            table.update()
            .where(table.c.plan_number == end.plan.number, table.c.pinned_until > end.now)
            .values(pinned_until=end.now)
        ).rowcount
    return f"đã bỏ ghim {unpinned} bài trên bản tin"
