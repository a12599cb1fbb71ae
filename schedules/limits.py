"""A schedule's firings against its channel's bounds (channels.settings.ScheduleLimits):
how close together, how many a day, how far ahead. Checked at import; the timer itself only
caps what it expands (schedules.timing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.rrule import rrule

from channels.settings import ScheduleLimits
from coso.durations import parse_duration, show

# The firings a check looks at: the first year of the schedule (the patterns of a rule repeat
# within it), or up to its first breach.
SAMPLE = timedelta(days=366)


@dataclass(frozen=True)
class Breach:
    """A bound the schedule goes beyond: the plan-file key to blame, its value, and why."""

    key: str  # start, rrule or until
    value: object
    reason: str


@dataclass(frozen=True)
class Planned:
    """What is checked of one schedule; times are local wall times in the plan's zone."""

    name: str
    channel: str
    start: datetime
    rule: rrule | None  # None: fires once, at start
    rule_text: str | None
    until: datetime | None  # the schedule's own end (until = …), if any


def check_limits(sch: Planned, limits: ScheduleLimits, now_local: datetime) -> list[Breach]:
    """Every bound `sch` goes beyond (empty: within them all)."""
    where = f"[channels.{sch.channel}.schedules]"
    reach = parse_duration(limits.max_reach)
    latest = now_local + reach
    if sch.rule is None:
        if sch.start > latest:
            return [_too_far(sch, "start", sch.start.isoformat(), sch.start, limits, latest)]
        return []
    breaches = []
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    count, rule_until = sch.rule._count, sch.rule._until  # type: ignore[attr-defined]
    most = limits.max_per_day * max(1, reach.days)
    if count is not None and count > most:
        breaches.append(
            Breach(
                "rrule",
                sch.rule_text,
                f"lịch {sch.name!r} có COUNT={count}, quá giới hạn {most} lần"
                f" (max_per_day = {limits.max_per_day} × max_reach = {limits.max_reach})"
                f" của kênh {sch.channel}; đổi giới hạn trong {where}",
            )
        )
        return breaches
    ends = [t for t in (sch.until, rule_until) if t is not None]
    if ends and min(ends) > latest:
        key, value = ("until", sch.until.isoformat()) if sch.until else ("rrule", sch.rule_text)
        breaches.append(_too_far(sch, key, value, min(ends), limits, latest))
    breach = _closest_firings(sch, limits, where)
    if breach is not None:
        breaches.append(breach)
    if count is not None and not ends:
        last = list(sch.rule)[-1]  # COUNT is bounded above, so this is short
        if last > latest:
            breaches.append(_too_far(sch, "rrule", sch.rule_text, last, limits, latest))
    return breaches


def _closest_firings(sch: Planned, limits: ScheduleLimits, where: str) -> Breach | None:
    """The first pair of firings closer than min_interval, or day with more than max_per_day,
    in the schedule's first year."""
    assert sch.rule is not None
    shortest = parse_duration(limits.min_interval)
    stop = sch.start + SAMPLE
    previous: datetime | None = None
    day: date | None = None
    on_day = 0
    for local in sch.rule:
        if local > stop or (sch.until is not None and local > sch.until):
            return None
        if previous is not None and local - previous < shortest:
            return Breach(
                "rrule",
                sch.rule_text,
                f"lịch {sch.name!r} phát hai lần cách nhau {show(local - previous)}"
                f" ({previous:%d/%m/%Y %H:%M:%S} và {local:%H:%M:%S}), dưới giới hạn"
                f" min_interval = {limits.min_interval} của kênh {sch.channel};"
                f" đổi giới hạn trong {where}",
            )
        on_day = on_day + 1 if local.date() == day else 1
        day = local.date()
        if on_day > limits.max_per_day:
            return Breach(
                "rrule",
                sch.rule_text,
                f"lịch {sch.name!r} phát hơn {limits.max_per_day} lần trong ngày"
                f" {local:%d/%m/%Y}, quá giới hạn max_per_day = {limits.max_per_day}"
                f" của kênh {sch.channel}; đổi giới hạn trong {where}",
            )
        previous = local
    return None


def _too_far(
    sch: Planned, key: str, value: object, end: datetime, limits: ScheduleLimits, latest: datetime
) -> Breach:
    return Breach(
        key,
        value,
        f"lịch {sch.name!r} phát đến {end:%d/%m/%Y}, xa quá giới hạn max_reach ="
        f" {limits.max_reach} của kênh {sch.channel} (đến {latest:%d/%m/%Y});"
        f" đổi giới hạn trong [channels.{sch.channel}.schedules]",
    )
