"""Human durations in settings and plan files: "90s", "15m", "2h", "1d", "1h30m"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# No setting or plan value means more than this; beyond it is a typo (and overflows).
LONGEST = timedelta(days=3660)


def parse_duration(text: str | int | float) -> timedelta:
    """Parse "1h30m" (or a number of seconds); raise ValueError naming the text."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text!r} is negative")
        if not text <= LONGEST.total_seconds():  # also NaN
            raise ValueError(f"duration {text!r} is longer than {show(LONGEST)}")
        return timedelta(seconds=text)
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} is not text like '15m' or '2h'")
    compact = text.strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(f"duration {text!r} is not like '90s', '15m', '2h', '1d' or '1h30m'")
    seconds = 0
    for number, unit in _PART.findall(compact):
        seconds += int(number) * int(timedelta(**{_UNITS[unit]: 1}).total_seconds())
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {show(LONGEST)}")
    return timedelta(seconds=seconds)


def duration_within(
    text: str | int | float, shortest: timedelta | None = None, longest: timedelta | None = None
) -> timedelta:
    """`parse_duration`, and at least `shortest` (None: more than zero) and at most `longest`."""
    value = parse_duration(text)
    if shortest is None and value <= timedelta():
        raise ValueError(f"duration {text!r} must be longer than 0s")
    if shortest is not None and value < shortest:
        raise ValueError(f"duration {text!r} is shorter than {show(shortest)}")
    if longest is not None and value > longest:
        raise ValueError(f"duration {text!r} is longer than {show(longest)}")
    return value


def show(value: timedelta) -> str:
    """A duration as written in settings: 3660d, 1h30m, 90s."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out
