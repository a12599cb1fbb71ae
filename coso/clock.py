"""Time source for the engine: the system clock in service, a manual clock in tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
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


@lru_cache(maxsize=4096)
def local_text(when: datetime, tz: str) -> str:
    """Shown as Vietnamese practice writes it: 'Thứ hai 03/05/2021 06:00'."""
    local = as_utc(when).astimezone(zone(tz))
    return f"{WEEKDAYS_VI[local.weekday()]} {local:%d/%m/%Y %H:%M}"
