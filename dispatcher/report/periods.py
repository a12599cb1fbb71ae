"""A report's period as people write it — a month `05/2021`, a quarter `Q2/2021`, a year
`2021`, or two dates — and the buckets a report may be cut into (weeks, months), all in
local dates of the plan's zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from coso.dates import FIRST_YEAR, LAST_YEAR, read_date
from coso.errors import InputError

DATE = "%d/%m/%Y"


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    label: str  # "tháng 05/2021", "quý II/2021", "năm 2021", "01/05/2021 – 31/05/2021"

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


QUARTERS = ("I", "II", "III", "IV")


def month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def parse_period(
    text: str | None, since: str | None, until: str | None, plan_start: date, plan_end: date
) -> Period:
    """The period asked for; the plan's whole period when none is given."""
    if text and (since or until):
        raise InputError("period", text, "cho --period hoặc --from/--until, không cả hai")
    if since or until:
        start = read_date("from", since) if since else plan_start
        end = read_date("until", until) if until else plan_end
        if end < start:
            field, value = ("until", until) if until else ("from", since or "")
            raise InputError(
                field,
                value,
                f"kỳ báo cáo kết thúc ({end:{DATE}}) trước khi bắt đầu ({start:{DATE}})",
            )
        return Period(start, end, f"{start:{DATE}} – {end:{DATE}}")
    if not text:
        return Period(plan_start, plan_end, f"{plan_start:{DATE}} – {plan_end:{DATE}}")
    value = text.strip()
    m = (
        re.fullmatch(r"(\d{1,2})/(\d{4})", value)
        or re.fullmatch(r"[Qq]([1-4])/(\d{4})", value)
        or re.fullmatch(r"()(\d{4})", value)
    )
    if m is None:
        raise InputError("period", text, "viết tháng 05/2021, quý Q2/2021 hoặc năm 2021")
    year = int(m[2])
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InputError("period", text, f"năm phải từ {FIRST_YEAR} đến {LAST_YEAR}")
    if value[0] in "Qq":
        quarter = int(m[1])
        first = date(year, 3 * quarter - 2, 1)
        last = month_end(date(year, 3 * quarter, 1))
        return Period(first, last, f"quý {QUARTERS[quarter - 1]}/{year}")
    if "/" in value:
        month = int(m[1])
        if not 1 <= month <= 12:
            raise InputError("period", text, "tháng phải từ 01 đến 12")
        first = date(year, month, 1)
        return Period(first, month_end(first), f"tháng {month:02d}/{year}")
    return Period(date(year, 1, 1), date(year, 12, 31), f"năm {year}")


@cache
def week_of(day: date) -> tuple[date, str]:
    """The Monday a day's week starts on, and the week as people read it."""
    monday = day - timedelta(days=day.weekday())
    iso = monday.isocalendar()
    sunday = monday + timedelta(days=6)
    return monday, f"tuần {iso.week:02d}/{iso.year} ({monday:%d/%m}–{sunday:%d/%m})"


@cache
def month_of(day: date) -> tuple[date, str]:
    return day.replace(day=1), f"{day:%m/%Y}"


def periods_in(
    per: str, period: Period, whole: Period | None = None
) -> list[tuple[date, date, int]]:
    """The target periods (`per`: day, week, month, plan) that fall in `period`, each cut to
    it, with the days of the whole period (`whole`: the plan's, for `plan`)."""
    if per == "plan":
        full = whole or period
        return [(period.start, period.end, full.days)]
    out = []
    day = period.start
    while day <= period.end:
        if per == "day":
            start, end = day, day
        elif per == "week":
            start = day - timedelta(days=day.weekday())
            end = start + timedelta(days=6)
        else:
            start, end = day.replace(day=1), month_end(day.replace(day=1))
        out.append((max(start, period.start), min(end, period.end), (end - start).days + 1))
        day = end + timedelta(days=1)
    return out


def promised(count: int, start: date, end: date, full_days: int) -> int:
    """What a target of `count` per period asks of the part [start, end] of one period: all
    of it for a whole period, else in proportion, rounded down (a week cut to its last three
    days cannot hold two Monday-and-Thursday broadcasts)."""
    days = (end - start).days + 1
    return count if days >= full_days else count * days // full_days
