"""Time source for the engine: the system clock in service, a manual clock in tests."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; lets tests run weeks in seconds."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = as_utc(when)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


def as_utc(when: datetime) -> datetime:
    """Aware datetime in UTC; a naive one is taken to be UTC already (as SQLite returns it)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like 'Asia/Ho_Chi_Minh')"
        ) from exc


WEEKDAYS_VI = ("Thứ hai", "Thứ ba", "Thứ tư", "Thứ năm", "Thứ sáu", "Thứ bảy", "Chủ nhật")


def in_zone(when: datetime, tz: str) -> datetime:
    """`when` as wall time in zone `tz` (a naive `when` is taken to be UTC, as stored)."""
    return as_utc(when).astimezone(zone(tz))


@lru_cache(maxsize=4096)
def local_text(when: datetime, tz: str, seconds: bool = False) -> str:
    """Shown as Vietnamese practice writes it: 'Thứ hai 03/05/2021 06:00' (with ':05' for
    seconds, where the order of entries matters)."""
    local = in_zone(when, tz)
    return f"{WEEKDAYS_VI[local.weekday()]} {date_text(local)} {time_text(local, seconds=seconds)}"


def date_text(when: date | datetime, tz: str | None = None) -> str:
    """dd/mm/yyyy; a datetime is first put in zone `tz` when one is given (a date, or a
    datetime without `tz`, is shown as it is)."""
    day = in_zone(when, tz) if tz and isinstance(when, datetime) else when
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def time_text(when: datetime | time, tz: str | None = None, seconds: bool = False) -> str:
    """HH:MM (HH:MM:SS with `seconds`), in zone `tz` when one is given."""
    moment = in_zone(when, tz) if tz and isinstance(when, datetime) else when
    shown = f"{moment.hour:02d}:{moment.minute:02d}"
    return f"{shown}:{moment.second:02d}" if seconds else shown


def weekday_text(when: date | datetime | int, tz: str | None = None) -> str:
    """'Thứ hai' … 'Chủ nhật': of a day, of a moment in zone `tz`, or of a weekday number
    (0 = Monday, as `date.weekday()`)."""
    if isinstance(when, int):
        return WEEKDAYS_VI[when]
    day = in_zone(when, tz) if tz and isinstance(when, datetime) else when
    return WEEKDAYS_VI[day.weekday()]
