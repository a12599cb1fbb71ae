"""Plan files for the tests of broadcast sessions by hand (console and `coso sessions`):
urban wards of Hà Nội with two 15-minute sessions a day, Monday to Friday, and items
queued into them on a Monday of the tests' choosing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOAN_KIEM, CUA_NAM = "00070", "00073"  # phường of Hà Nội
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ITEMS = (("tin-a", "Tin A", "10m"), ("tin-b", "Tin B", "5m"), ("tin-c", "Tin C", "10m"))


def monday_ahead(weeks: int = 2) -> date:
    """A Monday at least `weeks` weeks from today (the command line runs on the real clock)."""
    today = datetime.now(UTC).astimezone(ZONE).date()
    return today + timedelta(days=7 * weeks - today.weekday())


def at(day: date, clock: str) -> datetime:
    """A wall time in Hà Nội on `day`, in UTC."""
    return datetime.combine(day, time.fromisoformat(clock), ZONE).astimezone(UTC)


def wards_plan(
    monday: date,
    items: tuple[tuple[str, str, str], ...] = ITEMS,
    *,
    number: str = "12/KH-UBND",
    until: date | None = None,
    sessions: bool = True,
    stations: bool = True,
    units: tuple[str, ...] = (HOAN_KIEM, CUA_NAM),
) -> str:
    """A plan queueing `items` (key, title, length) once each into the wards' sessions from
    `monday` to `until` (that Monday alone by default); with `sessions`, the wards' Sáng
    (06:00) and Chiều (17:00), 15 minutes, T2-T6, given for every phường."""
    last = until or monday
    content = "".join(
        f'[[content]]\nkey = "{key}"\ntitle = "{title}"\nstate = "approved"\n\n'
        for key, title, _ in items
    )
    endpoints = (
        "".join(
            f'[[endpoints]]\nchannel = "station"\naddress = "station:{u}"\nunit = "{u}"\n\n'
            for u in units
        )
        if stations
        else ""
    )
    kinds = (
        "".join(
            f'[[sessions]]\nname = "{name}"\nunit_kind = "phường"\nweekdays = "T2-T6"\n'
            f'start = {start}:00\nlength = "15m"\n\n'
            for name, start in (("Sáng", "06:00"), ("Chiều", "17:00"))
        )
        if sessions
        else ""
    )
    targets = ", ".join(f'"{u}"' for u in units)
    schedules = "".join(
        f"""[[schedules]]
name = "Phát {title}"
content = "{key}"
channel = "station"
targets = {{ units = [{targets}] }}
queue = {{ per_week = 1, length = "{length}" }}
start = {monday.isoformat()}
until = {last.isoformat()}

"""
        for key, title, length in items
    )
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền phòng cháy chữa cháy ở các phường"
period_start = {(monday - timedelta(days=14)).isoformat()}
period_end = {(monday + timedelta(days=60)).isoformat()}
zone = "Asia/Ho_Chi_Minh"

{kinds}{content}{endpoints}{schedules}"""
