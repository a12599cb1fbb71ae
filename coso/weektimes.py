"""Week days, clock times and unit kinds as people write them in sessions (buổi phát):
"T2-T6", "05:00", "phường"."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import time

WEEKDAY_NAMES = {1: "T2", 2: "T3", 3: "T4", 4: "T5", 5: "T6", 6: "T7", 7: "CN"}
_WEEKDAY_NUMBERS = {name: number for number, name in WEEKDAY_NAMES.items()}
# Unit kinds as the unit tables name them, and the English words a settings file may use.
KIND_WORDS = {"ward": "phường", "commune": "xã", "special": "đặc khu"}


def kind_word(text: str) -> str:
    """A unit kind as the unit tables write it (English aliases accepted)."""
    value = " ".join(text.strip().lower().split())
    return KIND_WORDS.get(value, value)


def parse_weekdays(value: str | Sequence[str | int]) -> frozenset[int]:
    """ "T2-T6", ["T2", "T4", "CN"] or ISO numbers [1, 3, 7] → ISO weekday numbers;
    ValueError names what is not a day."""
    parts: list[str | int] = (
        list(re.split(r"[,\s]+", value.strip())) if isinstance(value, str) else list(value)
    )
    days: set[int] = set()
    for part in parts:
        if isinstance(part, bool):
            raise ValueError(f"{part!r} không phải là một ngày trong tuần")
        if isinstance(part, int):
            if not 1 <= part <= 7:
                raise ValueError(f"{part} không phải là một ngày trong tuần (1 = T2 … 7 = CN)")
            days.add(part)
            continue
        word = part.strip().upper()
        if not word:
            continue
        if "-" in word:
            first, _, last = word.partition("-")
            lo, hi = _day(first), _day(last)
            if lo > hi:
                raise ValueError(f"{part!r}: ngày đầu sau ngày cuối")
            days.update(range(lo, hi + 1))
        else:
            days.add(_day(word))
    if not days:
        raise ValueError("không có ngày nào trong tuần")
    return frozenset(days)


def _day(word: str) -> int:
    found = _WEEKDAY_NUMBERS.get(word.strip().upper())
    if found is None:
        raise ValueError(f"{word!r} không phải là một ngày trong tuần (T2 … T7, CN)")
    return found


def weekdays_text(days: Iterable[int]) -> str:
    return ", ".join(WEEKDAY_NAMES[d] for d in sorted(days))


def parse_clock(text: str | time) -> time:
    """ "05:00" (or a TOML local time) → time; ValueError names the text."""
    if isinstance(text, time):
        return text.replace(second=0, microsecond=0)
    match = re.fullmatch(r"\s*(\d{1,2})[:hH](\d{2})\s*", text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{text!r} không phải là giờ dạng HH:MM (05:00)")
    return time(int(match[1]), int(match[2]))


def clock_text(value: time) -> str:
    return f"{value:%H:%M}"
