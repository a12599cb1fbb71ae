"""When a schedule fires: one-off or RFC 5545 RRULE, in the plan's zone, stored in UTC.

Expanding a rule is bounded: a rule that dateutil would step through for ever (INTERVAL=0)
or up to the year 9999 without a firing (30 February) is refused when parsed, and one query
looks at no more than SCAN_CAP occurrences, so one schedule cannot hold up the timer."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, HOURLY, MINUTELY, SECONDLY, WEEKLY, YEARLY, rrule, rrulestr

from coso.clock import as_utc, zone

log = logging.getLogger(__name__)

MAX_COUNT = 100_000
# Local times a schedule may use at all, whatever its channel allows.
EARLIEST = datetime(2000, 1, 1)
LATEST = datetime(2199, 12, 31, 23, 59, 59)
# Occurrences one query may step through (before and inside its window), and return.
SCAN_CAP = 200_000
MOST = 10_000
# A rule is probed for a firing from this year to 9999: a few decades, whatever its start.
_PROBE_YEAR = 9939


class ExpansionError(ValueError):
    """A schedule's times cannot be expanded within the bounds above."""


def check_window(local: datetime, what: str = "start") -> None:
    """ValueError unless `local` lies between EARLIEST and LATEST."""
    if not EARLIEST <= local <= LATEST:
        raise ValueError(
            f"{what} {local:%d/%m/}{local.year:04d} {local:%H:%M} nằm ngoài khoảng cho phép"
            f" {EARLIEST:%d/%m/%Y} – {LATEST:%d/%m/%Y}"
        )


@dataclass(frozen=True)
class Timing:
    """The timing of one schedule; `fire_times` is its one question."""

    start_local: datetime  # naive, wall time in `zone`
    zone: str
    rrule: str | None = None
    until_local: datetime | None = None
    exdates_local: tuple[datetime, ...] = ()
    label: str = ""  # names the schedule in log lines
    # Explicit times (RFC 5545 RDATEs): a schedule queued into broadcast sessions fires at
    # the sessions it was placed in, and at no other time.
    rdates_local: tuple[datetime, ...] = ()

    def fire_times(self, after: datetime, until: datetime, most: int = MOST) -> list[datetime]:
        """UTC fire times t with after < t <= until: the first `most` of them.

        Never raises: a timing that cannot be expanded (a start out of range, a rule beyond
        the bounds, one stored before they were checked) is logged once and has no times,
        so it cannot stop other schedules from firing."""
        try:
            return self._fire_times(as_utc(after), as_utc(until), most)
        except (ValueError, OverflowError) as exc:
            _warn_once(self.label or f"timing from {self.start_local}", str(exc))
            return []

    def _fire_times(self, lo: datetime, hi: datetime, most: int) -> list[datetime]:
        tz = zone(self.zone)
        check_window(self.start_local)
        if self.rdates_local:
            excluded_local = set(self.exdates_local)
            placed = sorted({_to_utc(x, tz) for x in self.rdates_local if x not in excluded_local})
            return [t for t in placed if lo < t <= hi][:most]
        if self.rrule is None:
            only = _to_utc(self.start_local, tz)
            return [only] if lo < only <= hi else []
        excluded = {_to_utc(x, tz) for x in self.exdates_local if EARLIEST <= x <= LATEST}
        # Step through local wall times, so 06:00 stays 06:00 local whatever the offset.
        margin = _wall_margin(tz, lo, hi)
        lo_local = lo.astimezone(tz).replace(tzinfo=None) - margin
        hi_local = hi.astimezone(tz).replace(tzinfo=None) + margin
        rule = anchored_near(self.rule(), self.start_local, lo_local)
        times: list[datetime] = []
        for examined, local in enumerate(rule):
            if local > hi_local or (self.until_local is not None and local > self.until_local):
                break
            if examined >= SCAN_CAP:
                raise ExpansionError(
                    f"more than {SCAN_CAP} occurrences to step through before {hi_local}"
                )
            if local < lo_local:
                continue
            utc = _to_utc(local, tz)
            if lo < utc <= hi and utc not in excluded:
                times.append(utc)
                if len(times) >= most:
                    break
        return times

    def rule(self) -> rrule:
        return parse_rrule(self.rrule or "", self.start_local)


def parse_rrule(text: str, start_local: datetime) -> rrule:
    """Parse an RRULE (with or without the 'RRULE:' prefix); ValueError says what is wrong.

    Refused too: a rule dateutil cannot expand in bounded time (INTERVAL below 1, or no
    firing at all, like 30 February), and a COUNT below 1 or above MAX_COUNT."""
    found = _parsed(text, start_local)
    if isinstance(found, ValueError):
        raise found
    return found


@lru_cache(maxsize=4096)
def _parsed(text: str, start_local: datetime) -> rrule | ValueError:
    """The rule, or why it is refused (cached: the timer asks for the same rules again)."""
    try:
        rule = _parse(text, start_local)
    except ValueError as exc:
        return exc
    try:
        _check_bounded(rule, start_local)
    except ValueError as exc:
        return ExpansionError(str(exc))
    return rule


def _parse(text: str, start_local: datetime) -> rrule:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body:
        raise ValueError("empty RRULE")
    if "DTSTART" in body.upper():
        raise ValueError("give the start with 'start', not DTSTART inside the RRULE")
    try:
        rule = rrulestr(body, dtstart=start_local)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid RFC 5545 RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ValueError("one RRULE only")
    return rule


def _check_bounded(rule: rrule, start: datetime) -> None:
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    interval, count = rule._interval, rule._count  # type: ignore[attr-defined]
    if interval < 1:
        raise ValueError(f"INTERVAL={interval}: phải từ 1 trở lên (lặp lại mãi không dừng)")
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise ValueError(f"COUNT={count}: phải từ 1 đến {MAX_COUNT}")
    probe_start = _probe_start(rule, start)
    probe = rule.replace(dtstart=probe_start, count=None, until=None)
    try:
        first = probe.after(probe_start, inc=True)
    except ValueError as exc:  # dateutil finds some empty combinations while stepping
        raise ValueError(f"không bao giờ phát: {exc}") from exc
    if first is None:
        raise ValueError(
            "không bao giờ phát: không có ngày giờ nào thỏa mọi điều kiện BY… của quy tắc"
        )


def _probe_start(rule: rrule, start: datetime) -> datetime:
    """`start` moved forward by whole intervals to a few decades before the year 9999, so
    that looking for one firing from there steps through a few decades at most."""
    if start.year >= _PROBE_YEAR:
        return start
    freq, interval = rule._freq, rule._interval  # type: ignore[attr-defined]
    period = _PERIODS.get(freq)
    if period is not None:
        step = period * interval
        return start + ((datetime(_PROBE_YEAR, 1, 1) - start) // step) * step
    step_months = interval * (12 if freq == YEARLY else 1)
    months = (_PROBE_YEAR - start.year) * 12 // step_months * step_months
    while months > 0:  # a 31st or a 29 February needs a month or year that has it
        years, month = divmod(start.month - 1 + months, 12)
        try:
            return start.replace(year=start.year + years, month=month + 1)
        except ValueError:
            months -= step_months
    return start


# Fixed-length periods of each frequency; MONTHLY and YEARLY have none.
_PERIODS = {
    WEEKLY: timedelta(weeks=1),
    DAILY: timedelta(days=1),
    HOURLY: timedelta(hours=1),
    MINUTELY: timedelta(minutes=1),
    SECONDLY: timedelta(seconds=1),
}


def anchored_near(rule: rrule, start: datetime, lo: datetime) -> rrule:
    """The same rule with DTSTART moved forward by whole intervals to just before `lo`.

    dateutil iterates every occurrence from DTSTART, so a minutely rule started a year ago
    costs half a million steps per query. Moving DTSTART by a whole number of intervals keeps
    the same set of times (BYxxx parts are calendar filters). Not done with COUNT (it counts
    from the first occurrence) nor for MONTHLY/YEARLY (no fixed period, and few steps anyway).
    """
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    period = _PERIODS.get(rule._freq)  # type: ignore[attr-defined]
    if period is None or rule._count is not None or lo <= start:  # type: ignore[attr-defined]
        return rule
    step = period * rule._interval  # type: ignore[attr-defined]
    return rule.replace(dtstart=start + ((lo - start) // step) * step)


_DAY = timedelta(days=1)


def _wall_margin(tz: ZoneInfo, lo: datetime, hi: datetime) -> timedelta:
    """How far beyond the wall times of `lo` and `hi` a wall time falling between them can
    lie: only as far as the zone's offset changes (a fold or a gap), which is less than a day.
    A window of a day at most whose zone keeps one offset from a day before it to a day after
    (no zone changes it twice within a day) needs none: a minutely rule then steps through
    its window alone, not through the two days around it (the timer asks such short windows)."""
    if hi - lo > _DAY:
        return _DAY
    offsets = {t.astimezone(tz).utcoffset() for t in (lo - _DAY, lo, hi, hi + _DAY)}
    return timedelta(0) if len(offsets) == 1 else _DAY


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    return as_utc(local.replace(tzinfo=tz))


_warned: dict[tuple[str, str], float] = {}
WARN_AGAIN_AFTER = 3600.0  # seconds: the timer asks every few seconds; say it hourly


def _warn_once(label: str, reason: str) -> None:
    now = time.monotonic()
    if now - _warned.get((label, reason), -WARN_AGAIN_AFTER) >= WARN_AGAIN_AFTER:
        _warned[(label, reason)] = now
        log.error("%s: its times cannot be expanded, so it does not fire: %s", label, reason)


def timing_of(schedule: object) -> Timing:
    """Timing from a Schedule row (or anything with the same attributes)."""
    until = getattr(schedule, "until_local", None)
    name = getattr(schedule, "name", "")
    return Timing(
        label=f"schedule {getattr(schedule, 'id', '?')} ({name})",
        start_local=datetime.fromisoformat(schedule.start_local),  # type: ignore[attr-defined]
        zone=schedule.zone,  # type: ignore[attr-defined]
        rrule=schedule.rrule,  # type: ignore[attr-defined]
        until_local=datetime.fromisoformat(until) if until else None,
        exdates_local=tuple(
            datetime.fromisoformat(x)
            for x in schedule.exdates_local  # type: ignore[attr-defined]
        ),
        rdates_local=tuple(
            datetime.fromisoformat(x) for x in getattr(schedule, "rdates_local", None) or ()
        ),
    )
