"""The priority clashes of a commune's day that its operator may still order: priority items
sharing a slot, on the channels whose items play one after another, not gone out yet."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from channels import registry
from channels.host import ChannelHost, Slot
from coso.clock import zone
from schedules.running_order import Clash, SlotItem, clashes, load_orders


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), zone(tz))
    return start, start + timedelta(days=1)


def slot_items(slots: Iterable[Slot], channel: str, units: set[str]) -> list[SlotItem]:
    """Each slot's item in each commune of `units` it reaches."""
    items = []
    for slot in slots:
        for unit in {u for u in slot.unit_codes if u in units}:
            items.append(
                SlotItem(unit, slot.at, slot.schedule_id, slot.priority, slot.title, channel)
            )
    return items


def day_clashes(host: ChannelHost, units: set[str], day: date, tz: str) -> list[Clash]:
    """The clashes of `day` (local, in `tz`) in `units` whose slot is still to come."""
    now = host.clock.now()
    lo, hi = day_bounds(day, tz)
    if hi <= now:
        return []
    # From just before the day (a slot at 00:00 is the day's), slots still to come.
    start = max(lo - timedelta(seconds=1), now)
    items: list[SlotItem] = []
    for plugin in registry.plugins().values():
        if not plugin.plays_in_turn:
            continue
        slots = host.upcoming(plugin.name, now, hi - now, after=start)
        coming = (s for s in slots if lo <= s.at < hi and s.at > now)
        items += slot_items(coming, plugin.name, units)
    return clashes(items, load_orders(host.engine, units, lo, hi))


def clash_of(host: ChannelHost, unit: str, at: datetime, schedule_id: int, tz: str) -> Clash | None:
    """The clash a schedule's item is in, in a commune's slot still to come."""
    found = day_clashes(host, {unit}, at.astimezone(zone(tz)).date(), tz)
    return next(
        (c for c in found if c.unit_code == unit and c.at == at and schedule_id in c.schedule_ids),
        None,
    )
