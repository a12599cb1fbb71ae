"""When a schedule fires: one-off or RFC 5545 RRULE, in the plan's zone, stored in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, HOURLY, MINUTELY, SECONDLY, WEEKLY, rrule, rrulestr

from coso.clock import as_utc, zone

MAX_COUNT = 100_000


@dataclass(frozen=True)
class Timing:
    """The timing of one schedule; `fire_times` is its one question."""

    start_local: datetime  # naive, wall time in `zone`
    zone: str
    rrule: str | None = None
    until_local: datetime | None = None
    exdates_local: tuple[datetime, ...] = ()

    def fire_times(self, after: datetime, until: datetime) -> list[datetime]:
        """UTC fire times t with after < t <= until."""
        tz = zone(self.zone)
        lo, hi = as_utc(after), as_utc(until)
        if self.rrule is None:
            only = _to_utc(self.start_local, tz)
            return [only] if lo < only <= hi else []
        excluded = {_to_utc(x, tz) for x in self.exdates_local}
        # Step through local wall times, so 06:00 stays 06:00 local whatever the offset.
        lo_local = lo.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
        hi_local = hi.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
        rule = anchored_near(self.rule(), self.start_local, lo_local)
        times = []
        for local in rule.between(lo_local, hi_local, inc=True):
            if self.until_local is not None and local > self.until_local:
                break
            utc = _to_utc(local, tz)
            if lo < utc <= hi and utc not in excluded:
                times.append(utc)
        return times

    def rule(self) -> rrule:
        return parse_rrule(self.rrule or "", self.start_local)


def parse_rrule(text: str, start_local: datetime) -> rrule:
    """Parse an RRULE (with or without the 'RRULE:' prefix); ValueError says what is wrong."""
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


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    return as_utc(local.replace(tzinfo=tz))


def timing_of(schedule: object) -> Timing:
    """Timing from a Schedule row (or anything with the same attributes)."""
    until = getattr(schedule, "until_local", None)
    return Timing(
        start_local=datetime.fromisoformat(schedule.start_local),  # type: ignore[attr-defined]
        zone=schedule.zone,  # type: ignore[attr-defined]
        rrule=schedule.rrule,  # type: ignore[attr-defined]
        until_local=datetime.fromisoformat(until) if until else None,
        exdates_local=tuple(
            datetime.fromisoformat(x)
            for x in schedule.exdates_local  # type: ignore[attr-defined]
        ),
    )
