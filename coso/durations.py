"""Human durations in settings and plan files: "90s", "15m", "2h", "1d", "1h30m"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse "1h30m" (or a number of seconds); raise ValueError naming the text."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text!r} is negative")
        return timedelta(seconds=text)
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} is not text like '15m' or '2h'")
    compact = text.strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(f"duration {text!r} is not like '90s', '15m', '2h', '1d' or '1h30m'")
    total = timedelta()
    for number, unit in _PART.findall(compact):
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total
