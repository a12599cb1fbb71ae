"""The console's schedule form: what a person fills in (how often, which days, what times,
from and to which day), written as the timing coso stores (start, RFC 5545 RRULE, until),
read back from a stored timing when the form can show it, and any stored timing told in
Vietnamese words ("Thứ hai đến thứ bảy, 05:30").

Times of day that are not every hour × every minute of the lists (05:30 and 17:00 is not
05:00, 05:30, 17:00 and 17:30) are picked out of that product with BYSETPOS: per day when
the rule repeats every day or week or month, per period when it skips weeks or months.
A rule is read back into the form only when the form's own rule fires at the same times;
otherwise `timing_form` says None and the page shows the RRULE as it is."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any, NamedTuple

from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, SECONDLY, WEEKLY, YEARLY, rrule

from channels.settings import ScheduleLimits
from coso.clock import WEEKDAYS_VI, date_text, time_text
from coso.errors import InputError
from schedules.limits import Planned, check_limits
from schedules.timing import EARLIEST, LATEST, parse_rrule

ONCE, DAILY_KIND, WEEKLY_KIND, MONTHLY_KIND = "once", "daily", "weekly", "monthly"
KINDS: Mapping[str, str] = {
    ONCE: "Một lần",
    DAILY_KIND: "Hằng ngày",
    WEEKLY_KIND: "Hằng tuần",
    MONTHLY_KIND: "Hằng tháng",
}
WEEKDAY_CODES = ("T2", "T3", "T4", "T5", "T6", "T7", "CN")  # as calendars here write them
RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_INTERVAL = 99
END_OF_DAY = time(23, 59, 59)  # an end date is the whole of that day, as in plan files
MAX_SETPOS = 366  # RFC 5545's bound on a BYSETPOS value


@dataclass(frozen=True)
class TimingForm:
    """The schedule form's fields, as text, as the page posts them.

    kind: once | daily | weekly | monthly; start, end: dd/mm/yyyy (yyyy-mm-dd, what a
    date input posts, is read too), end optional; times: HH:MM, one or more; weekdays (for
    weekly): T2 … T7, CN; month_days (for monthly): 1 … 31; interval: every how many days,
    weeks or months (1 when empty). Fields the kind does not use are ignored."""

    kind: str = ONCE
    start: str = ""
    times: tuple[str, ...] = ()
    weekdays: tuple[str, ...] = ()
    month_days: tuple[str, ...] = ()
    interval: str = "1"
    end: str = ""

    @classmethod
    def from_fields(cls, fields: Any) -> TimingForm:
        """From posted form data: a mapping of field name to text or list of texts, or
        anything with `getlist` (Starlette's FormData). `times` and `month_days` may be one
        text listing several ("05:30, 17:00"); unknown names are ignored."""

        def values(name: str) -> list[str]:
            if hasattr(fields, "getlist"):
                found: Any = fields.getlist(name)
            else:
                found = fields.get(name, ())
            if isinstance(found, str):
                found = [found]
            return [str(v) for v in found]

        def one(name: str, default: str) -> str:
            given = values(name)
            return given[-1] if given else default

        return cls(
            kind=one("kind", ONCE).strip(),
            start=one("start", "").strip(),
            times=tuple(_split(values("times"))),
            weekdays=tuple(_split(values("weekdays"))),
            month_days=tuple(_split(values("month_days"))),
            interval=one("interval", "1").strip(),
            end=one("end", "").strip(),
        )


class StoredTiming(NamedTuple):
    """A schedule's timing as `schedules.models.Schedule` keeps it: local ISO texts."""

    start_local: str
    rrule: str | None
    until_local: str | None


@dataclass(frozen=True)
class _Timing:
    """The form, read: times sorted, lists without repeats."""

    kind: str
    start: date
    times: tuple[time, ...]
    weekdays: tuple[int, ...] = ()  # 0 = Monday
    month_days: tuple[int, ...] = ()
    interval: int = 1
    end: date | None = None


# --- form → stored timing ------------------------------------------------------------------


def stored_timing(form: TimingForm) -> StoredTiming:
    """The timing to store for `form`; InputError naming the first field that is wrong."""
    problems = form_problems(form)
    if problems:
        raise problems[0]
    read, _ = _read(form)
    assert read is not None
    return _write(read)


def form_problems(form: TimingForm) -> list[InputError]:
    """Every field of `form` that is wrong, and why (empty: it can be stored)."""
    read, problems = _read(form)
    if read is None:
        return problems
    try:
        stored = _write(read)
    except InputError as exc:
        return [exc]
    return _never_fires(read, stored, form)


def limit_problems(
    form: TimingForm,
    limits: ScheduleLimits,
    now_local: datetime,
    *,
    name: str = "",
    channel: str = "",
) -> list[InputError]:
    """Where `form` goes beyond its channel's bounds (`schedules.limits`), blamed on the form
    field a person would change; the form's own problems first."""
    problems = form_problems(form)
    if problems:
        return problems
    stored = stored_timing(form)
    start = datetime.fromisoformat(stored.start_local)
    planned = Planned(
        name=name,
        channel=channel,
        start=start,
        rule=parse_rrule(stored.rrule, start) if stored.rrule else None,
        rule_text=stored.rrule,
        until=datetime.fromisoformat(stored.until_local) if stored.until_local else None,
    )
    fields = {"start": ("start", form.start), "until": ("end", form.end)}
    found = []
    for breach in check_limits(planned, limits, now_local):
        field, value = fields.get(breach.key, ("times", ", ".join(form.times)))
        found.append(InputError(field, value, breach.reason))
    return found


def _read(form: TimingForm) -> tuple[_Timing | None, list[InputError]]:
    problems: list[InputError] = []

    def check(reader: Any, value: object) -> Any:
        try:
            return reader(value)
        except InputError as exc:
            problems.append(exc)
            return None

    kind = form.kind.strip().lower()
    if kind not in KINDS:
        choices = ", ".join(f"{k} ({v.lower()})" for k, v in KINDS.items())
        problems.append(InputError("kind", form.kind, f"phải là một trong: {choices}"))
    start = check(lambda v: _day("start", v, required=True), form.start)
    times = check(_times, form.times)
    if kind == ONCE:
        if times is not None and len(times) > 1:
            problems.append(
                InputError("times", ", ".join(form.times), "lịch một lần chỉ có một giờ phát")
            )
        if problems:
            return None, problems
        return _Timing(ONCE, start, times), problems
    interval = check(_interval, form.interval)
    end = check(lambda v: _day("end", v, required=False), form.end)
    weekdays: tuple[int, ...] = ()
    month_days: tuple[int, ...] = ()
    if kind == WEEKLY_KIND:
        weekdays = check(_weekdays, form.weekdays) or ()
    if kind == MONTHLY_KIND:
        month_days = check(_month_days, form.month_days) or ()
    if start is not None and end is not None and end < start:
        problems.append(InputError("end", form.end, f"trước ngày bắt đầu {date_text(start)}"))
    if problems or kind not in KINDS:
        return None, problems
    return _Timing(kind, start, times, weekdays, month_days, interval, end), problems


_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def _day(field: str, text: str, required: bool) -> date | None:
    value = text.strip()
    if not value:
        if required:
            raise InputError(field, text, "cần có ngày (dd/mm/yyyy)")
        return None
    dmy, iso = _DMY.fullmatch(value), _ISO.fullmatch(value)
    if dmy:
        day, month, year = (int(x) for x in dmy.groups())
    elif iso:
        year, month, day = (int(x) for x in iso.groups())
    else:
        raise InputError(field, text, "không phải ngày dd/mm/yyyy")
    try:
        found = date(year, month, day)
    except ValueError:
        raise InputError(field, text, "không có ngày này trong lịch") from None
    if not EARLIEST.date() <= found <= LATEST.date():
        raise InputError(
            field,
            text,
            f"nằm ngoài khoảng cho phép {date_text(EARLIEST)} – {date_text(LATEST)}",
        )
    return found


_TIME = re.compile(r"(\d{1,2})(?::(\d{2})(?::(\d{2}))?|[hg](\d{2})?)", re.IGNORECASE)


def _times(texts: Sequence[str]) -> tuple[time, ...]:
    found: set[time] = set()
    for text in _split(texts):
        match = _TIME.fullmatch(text)
        if not match:
            raise InputError("times", text, "không phải giờ HH:MM")
        hour, minute, second, after_h = match.groups()
        minutes = int(minute or after_h or 0)
        if int(hour) > 23:
            raise InputError("times", text, "giờ phải từ 00 đến 23")
        if minutes > 59:
            raise InputError("times", text, "phút phải từ 00 đến 59")
        if second is not None and int(second) != 0:
            raise InputError("times", text, "giờ phát tính đến phút (HH:MM)")
        found.add(time(int(hour), minutes))
    if not found:
        raise InputError("times", ", ".join(texts), "cần ít nhất một giờ phát (HH:MM)")
    return tuple(sorted(found))


def _weekdays(texts: Sequence[str]) -> tuple[int, ...]:
    names = {code.casefold(): i for i, code in enumerate(WEEKDAY_CODES)}
    names |= {code.casefold(): i for i, code in enumerate(RRULE_DAYS)}
    names |= {name.casefold(): i for i, name in enumerate(WEEKDAYS_VI)}
    found = set()
    for text in texts:
        key = " ".join(text.split()).casefold()
        if not key:
            continue
        if key not in names:
            raise InputError(
                "weekdays", text, f"không phải thứ trong tuần: {', '.join(WEEKDAY_CODES)}"
            )
        found.add(names[key])
    if not found:
        raise InputError("weekdays", "", "chọn ít nhất một thứ trong tuần")
    return tuple(sorted(found))


def _month_days(texts: Sequence[str]) -> tuple[int, ...]:
    found = set()
    for text in _split(texts):
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 31):
            raise InputError("month_days", text, "ngày trong tháng phải từ 1 đến 31")
        found.add(int(text))
    if not found:
        raise InputError("month_days", ", ".join(texts), "cần ít nhất một ngày trong tháng")
    return tuple(sorted(found))


def _interval(text: str) -> int:
    value = text.strip() or "1"
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_INTERVAL):
        raise InputError("interval", text, f"phải là số nguyên từ 1 đến {MAX_INTERVAL}")
    return int(value)


def _split(texts: Iterable[str]) -> Iterator[str]:
    """'05:30, 17:00' and '1 và 15' as their items."""
    for text in texts:
        for item in re.split(r"[,;\s]+|\bvà\b", text):
            if item.strip():
                yield item.strip()


def _write(t: _Timing) -> StoredTiming:
    first = datetime.combine(t.start, t.times[0])
    if t.kind == ONCE:
        return StoredTiming(first.isoformat(), None, None)
    hours = sorted({x.hour for x in t.times})
    minutes = sorted({x.minute for x in t.times})
    product = [time(h, m) for h in hours for m in minutes]
    per_day = t.kind == DAILY_KIND or t.interval == 1
    if len(product) == len(t.times):
        parts = [f"FREQ={_FREQ_OF[t.kind]}"]
    elif per_day:
        parts = ["FREQ=DAILY"]  # BYSETPOS then picks among one day's times
    else:
        parts = [f"FREQ={_FREQ_OF[t.kind]}"]  # BYSETPOS picks among the period's times
    if t.interval > 1:
        parts.append(f"INTERVAL={t.interval}")
    if t.kind == WEEKLY_KIND:
        parts.append("BYDAY=" + ",".join(RRULE_DAYS[d] for d in t.weekdays))
    if t.kind == MONTHLY_KIND:
        parts.append("BYMONTHDAY=" + ",".join(str(d) for d in t.month_days))
    parts.append("BYHOUR=" + ",".join(str(h) for h in hours))
    parts.append("BYMINUTE=" + ",".join(str(m) for m in minutes))
    if len(product) != len(t.times):
        picked = [product.index(x) + 1 for x in t.times]
        if not per_day:
            days = len(t.weekdays) if t.kind == WEEKLY_KIND else len(t.month_days)
            picked = [d * len(product) + p for d in range(days) for p in picked]
        if picked[-1] > MAX_SETPOS:
            raise InputError(
                "times",
                ", ".join(time_text(x) for x in t.times),
                "quá nhiều giờ phát khác nhau cho một lịch lặp cách quãng; chia thành"
                " nhiều lịch, hoặc chọn giờ có cùng số phút",
            )
        parts.append("BYSETPOS=" + ",".join(str(p) for p in picked))
    until = datetime.combine(t.end, END_OF_DAY).isoformat() if t.end else None
    return StoredTiming(first.isoformat(), ";".join(parts), until)


_FREQ_OF = {DAILY_KIND: "DAILY", WEEKLY_KIND: "WEEKLY", MONTHLY_KIND: "MONTHLY"}


def _never_fires(t: _Timing, stored: StoredTiming, form: TimingForm) -> list[InputError]:
    """A rule coso refuses (never fires at all), or no firing between start and end."""
    if stored.rrule is None:
        return []
    start = datetime.fromisoformat(stored.start_local)
    try:
        rule = parse_rrule(stored.rrule, start)
    except ValueError as exc:
        field, value = ("month_days", ", ".join(form.month_days))
        if t.kind != MONTHLY_KIND:
            field, value = ("times", ", ".join(form.times))
        return [InputError(field, value, str(exc))]
    if t.end is not None:
        first = rule.after(start, inc=True)
        if first is None or first > datetime.combine(t.end, END_OF_DAY):
            return [
                InputError(
                    "end",
                    form.end,
                    f"không có lần phát nào từ {date_text(t.start)} đến {date_text(t.end)}",
                )
            ]
    return []


# --- stored timing → form ------------------------------------------------------------------

_KNOWN_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYHOUR", "BYMINUTE", "BYSECOND"}
_KNOWN_PARTS |= {"BYSETPOS", "WKST", "UNTIL"}
# Firings compared before a rule is taken for the form's: a year and two of its periods.
_COMPARED_DAYS = 400
_COMPARED_MOST = 5000


def timing_form(
    start_local: str | datetime, rrule_text: str | None, until_local: str | datetime | None
) -> TimingForm | None:
    """The form that stores as this timing, or one that fires at exactly the same times;
    None when no form does (COUNT, BYMONTH, ordinal weekdays, HOURLY rules, …)."""
    return _timing_form(start_local, rrule_text, until_local)


@lru_cache(maxsize=4096)
def _timing_form(
    start_local: str | datetime, rrule_text: str | None, until_local: str | datetime | None
) -> TimingForm | None:
    """Cached: a page lists many schedules, and comparing firings costs a few ms each."""
    try:
        start = _local(start_local)
        until = _local(until_local) if until_local else None
    except (TypeError, ValueError):
        return None
    if start.second or start.microsecond or not EARLIEST <= start <= LATEST:
        return None
    if rrule_text is None:
        return _form(_Timing(ONCE, start.date(), (start.time(),)))
    try:
        rule = parse_rrule(rrule_text, start)
    except ValueError:
        return None
    found = _from_rule(_parts(rrule_text), rule, start, until)
    return _form(found) if found is not None else None


def _local(value: str | datetime) -> datetime:
    local = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if local.tzinfo is not None:
        raise ValueError("stored local times carry no offset")
    return local


def _parts(text: str) -> dict[str, str]:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts = {}
    for item in body.split(";"):
        key, _, value = item.partition("=")
        if key.strip():
            parts[key.strip().upper()] = value.strip().upper()
    return parts


def _from_rule(
    parts: dict[str, str], rule: rrule, start: datetime, until: datetime | None
) -> _Timing | None:
    if set(parts) - _KNOWN_PARTS or parts.get("FREQ") not in ("DAILY", "WEEKLY", "MONTHLY"):
        return None
    try:
        interval = int(parts.get("INTERVAL", "1"))
        hours = _ints(parts.get("BYHOUR")) or [start.hour]
        minutes = _ints(parts.get("BYMINUTE")) or [start.minute]
        seconds = _ints(parts.get("BYSECOND")) or [0]
        month_days = _ints(parts.get("BYMONTHDAY"))
        setpos = _ints(parts.get("BYSETPOS"))
    except ValueError:
        return None
    weekdays = _rule_days(parts.get("BYDAY"))
    if weekdays is None or seconds != [0] or any(d < 1 for d in month_days + setpos):
        return None
    freq = parts["FREQ"]
    if weekdays and month_days:
        return None
    if freq == "DAILY" and (weekdays or month_days) and interval != 1:
        return None
    if freq == "DAILY":
        kind = WEEKLY_KIND if weekdays else MONTHLY_KIND if month_days else DAILY_KIND
    elif freq == "WEEKLY" and not month_days:
        kind, weekdays = WEEKLY_KIND, weekdays or [start.weekday()]
    elif freq == "MONTHLY" and not weekdays:
        kind, month_days = MONTHLY_KIND, month_days or [start.day]
    else:
        return None
    product = sorted(time(h, m) for h in set(hours) for m in set(minutes))
    times: set[time] = set(product)
    if setpos:
        days = sorted(set(weekdays or month_days)) if freq != "DAILY" else [0]
        picked: dict[int, set[time]] = {}
        for p in setpos:
            day, at = divmod(p - 1, len(product))
            if day < len(days):
                picked.setdefault(days[day], set()).add(product[at])
        if not picked or len({frozenset(v) for v in picked.values()}) != 1:
            return None
        times = next(iter(picked.values()))
        if freq == "WEEKLY":
            weekdays = sorted(picked)
        elif freq == "MONTHLY":
            month_days = sorted(picked)
    ordered = tuple(sorted(times))
    end = _end_day(rule, until, ordered)
    found = _Timing(
        kind,
        start.date(),
        ordered,
        tuple(sorted(set(weekdays))),
        tuple(sorted(set(month_days))),
        interval,
        end,
    )
    if end is not None and end < found.start:
        return None
    if not 1 <= found.interval <= MAX_INTERVAL:
        return None
    for candidate in _starts(found, rule, start, until):
        if _same_firings(candidate, rule, start, until):
            return candidate
    return None


def _ints(text: str | None) -> list[int]:
    return [int(x) for x in text.split(",")] if text else []


def _rule_days(text: str | None) -> list[int] | None:
    """BYDAY as weekday numbers; None when it has ordinals ("1MO", "-1FR")."""
    if not text:
        return []
    found = []
    for item in text.split(","):
        if item not in RRULE_DAYS:
            return None
        found.append(RRULE_DAYS.index(item))
    return found


def _end_day(rule: rrule, until: datetime | None, times: tuple[time, ...]) -> date | None:
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    ends = [x for x in (until, rule._until) if x is not None]  # type: ignore[attr-defined]
    if not ends:
        return None
    last = min(ends)
    return last.date() if last.time() >= times[-1] else last.date() - timedelta(days=1)


def _starts(found: _Timing, rule: rrule, start: datetime, until: datetime | None) -> list[_Timing]:
    """The form with the stored start's day, else with the day of the first firing (a start
    later in the day than the times fires first on a later day)."""
    candidates = [found]
    first = rule.after(start, inc=True)
    if first is not None and first.date() != found.start:
        candidates.append(replace(found, start=first.date()))
    return candidates


def _same_firings(found: _Timing, rule: rrule, start: datetime, until: datetime | None) -> bool:
    try:
        stored = _write(found)
        own = parse_rrule(stored.rrule or "", datetime.fromisoformat(stored.start_local))
    except (InputError, ValueError):
        return False
    own_until = datetime.fromisoformat(stored.until_local) if stored.until_local else None
    span = {DAILY_KIND: 1, WEEKLY_KIND: 7, MONTHLY_KIND: 31}[found.kind] * found.interval
    horizon = min(start, datetime.fromisoformat(stored.start_local)) + timedelta(
        days=_COMPARED_DAYS + 2 * span
    )
    return _firings(rule, until, horizon) == _firings(own, own_until, horizon)


def _firings(rule: rrule, until: datetime | None, horizon: datetime) -> list[datetime]:
    stop = min(horizon, until) if until is not None else horizon
    return list(islice(_before(rule, stop), _COMPARED_MOST))


def _before(rule: rrule, stop: datetime) -> Iterator[datetime]:
    for when in rule:
        if when > stop:
            return
        yield when


def _form(t: _Timing) -> TimingForm:
    """The form as a page shows it: dd/mm/yyyy, HH:MM, T2 … CN."""
    form = TimingForm(kind=t.kind, start=date_text(t.start), times=tuple(map(time_text, t.times)))
    if t.kind == ONCE:
        return form
    return replace(
        form,
        weekdays=tuple(WEEKDAY_CODES[d] for d in t.weekdays),
        month_days=tuple(str(d) for d in t.month_days),
        interval=str(t.interval),
        end=date_text(t.end) if t.end else "",
    )


# --- words -----------------------------------------------------------------------------------


def timing_words(schedule: Any) -> str:
    """A schedule row's timing in words: its clock rule, or the sessions it is queued into
    ("Vào buổi phát, 2 lần mỗi tuần (buổi Sáng), từ 03/05/2021 đến 31/05/2021: 8 buổi")."""
    queue = getattr(schedule, "queue", None)
    if not queue:
        return describe(schedule.start_local, schedule.rrule, schedule.until_local)
    names = queue.get("sessions") or []
    which = f" (buổi {', '.join(names)})" if names else ""
    first = date_text(_local(schedule.start_local))
    until = schedule.until_local
    span = f", từ {first} đến {date_text(_local(until))}" if until else f", từ {first}"
    placed = len(getattr(schedule, "rdates_local", None) or [])
    return f"Vào buổi phát, {queue.get('per_week', 1)} lần mỗi tuần{which}{span}: {placed} buổi"


def describe(
    start_local: str | datetime,
    rrule_text: str | None,
    until_local: str | datetime | None = None,
    *,
    today: date | None = None,
) -> str:
    """The timing in Vietnamese: "Thứ hai đến thứ bảy, 05:30", "Một lần, 06:00 ngày
    03/05/2021", "2 tuần một lần, chủ nhật, 08:00", with ", từ 03/05/2021 đến 31/12/2021"
    when it ends (and ", từ …" when it starts after `today`). Any timing gets words: a rule
    the form cannot show is told in general terms, and one coso refuses says so."""
    try:
        form = timing_form(start_local, rrule_text, until_local)
        if form is not None:
            read, _ = _read(form)
            if read is not None:
                return _form_words(read, today)
        return _rule_words(_local(start_local), rrule_text, until_local)
    except Exception:  # words are shown beside the raw rule: they must never break a page
        return f"Lịch lặp theo quy tắc {rrule_text}" if rrule_text else f"Một lần, {start_local}"


def _form_words(t: _Timing, today: date | None) -> str:
    times = _and(time_text(x) for x in t.times)
    if t.kind == ONCE:
        return f"Một lần, {times} ngày {date_text(t.start)}"
    n = t.interval
    if t.kind == DAILY_KIND or (t.kind == WEEKLY_KIND and len(t.weekdays) == 7 and n == 1):
        head = "Hằng ngày" if n == 1 else f"{n} ngày một lần"
    elif t.kind == WEEKLY_KIND:
        days = _weekday_words(t.weekdays)
        head = _capital(days) if n == 1 else f"{n} tuần một lần, {days}"
    else:
        days = "ngày " + _and(_runs(t.month_days, str))
        head = f"Hằng tháng {days}" if n == 1 else f"{n} tháng một lần, {days}"
    words = f"{head}, {times}"
    if t.end is not None:
        return f"{words}, từ {date_text(t.start)} đến {date_text(t.end)}"
    if today is not None and t.start > today:
        return f"{words}, từ {date_text(t.start)}"
    return words


def _weekday_words(days: Sequence[int]) -> str:
    """'thứ hai đến thứ bảy', 'thứ hai, thứ tư, thứ sáu'."""
    return ", ".join(_runs(days, lambda d: WEEKDAYS_VI[d].lower()))


def _runs(days: Sequence[int], name: Any) -> list[str]:
    """Each day's name, three days or more in a row as one span ('thứ hai đến thứ tư',
    '1 đến 10')."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    words = []
    for run in runs:
        names = [name(d) for d in run]
        words += [f"{names[0]} đến {names[-1]}"] if len(run) >= 3 else names
    return words


def _and(items: Iterable[str]) -> str:
    """'a', 'a và b', 'a, b và c'."""
    listed = list(items)
    if len(listed) <= 1:
        return "".join(listed)
    return ", ".join(listed[:-1]) + " và " + listed[-1]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


_FREQ_WORDS = {
    YEARLY: ("Hằng năm", "năm"),
    MONTHLY: ("Hằng tháng", "tháng"),
    WEEKLY: ("Hằng tuần", "tuần"),
    DAILY: ("Hằng ngày", "ngày"),
    HOURLY: ("Hằng giờ", "giờ"),
    MINUTELY: ("Hằng phút", "phút"),
    SECONDLY: ("Hằng giây", "giây"),
}
_PLAIN_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR", "BYMINUTE"}
_PLAIN_PARTS |= {"COUNT", "UNTIL", "WKST"}


def _rule_words(start: datetime, text: str | None, until_local: str | datetime | None) -> str:
    """General words for a rule the form cannot show: how often, on which days, at what
    times, the first firing, and how it ends."""
    if text is None:
        return f"Một lần, {time_text(start, seconds=bool(start.second))} ngày {date_text(start)}"
    try:
        rule = parse_rrule(text, start)
    except ValueError as exc:
        return f"Quy tắc lặp không dùng được ({exc}): {text}"
    parts = _parts(text)
    # dateutil keeps the parsed parts in private attributes; there is no public accessor.
    freq, n = rule._freq, rule._interval  # type: ignore[attr-defined]
    every, unit = _FREQ_WORDS[freq]
    words = [every if n == 1 else f"{n} {unit} một lần"]
    if "BYMONTH" in parts:
        months = sorted(rule._bymonth)  # type: ignore[attr-defined]
        words.append("tháng " + _and(str(m) for m in months))
    days = _day_words(parts.get("BYDAY", ""))
    if days:
        words.append(days)
    if "BYMONTHDAY" in parts:
        words.append("ngày " + _and(_month_day_word(x) for x in _ints(parts["BYMONTHDAY"])))
    if freq > DAILY and "BYHOUR" in parts:
        hours = sorted(rule._byhour)  # type: ignore[attr-defined]
        words.append("trong các giờ " + _and(f"{h:02d}" for h in hours))
    if freq <= DAILY and "BYSETPOS" not in parts:
        moments = sorted(rule._timeset)  # type: ignore[attr-defined]
        words.append(_and(time_text(x, seconds=any(m.second for m in moments)) for x in moments))
    if set(parts) - _PLAIN_PARTS:
        words.append(f"theo quy tắc riêng ({text})")
    first = rule.after(start, inc=True)
    if first is not None:
        shown = time_text(first, seconds=bool(first.second))
        words.append(f"lần đầu {shown} ngày {date_text(first)}")
    else:
        words.append("không còn lần phát nào")
    count, rule_until = rule._count, rule._until  # type: ignore[attr-defined]
    if count is not None:
        words.append(f"{count} lần")
    ends = [x for x in (rule_until, _local(until_local) if until_local else None) if x]
    if ends:
        last = min(ends)
        words.append(f"đến {time_text(last)} ngày {date_text(last)}")
    return ", ".join(words)


def _day_words(text: str) -> str:
    """BYDAY in words: 'thứ hai, thứ năm', 'thứ hai đầu tiên', 'thứ sáu cuối cùng'."""
    words = []
    for item in filter(None, text.split(",")):
        match = re.fullmatch(r"([+-]?\d{0,2})(MO|TU|WE|TH|FR|SA|SU)", item)
        if not match:
            return ""
        ordinal, code = match.groups()
        name = WEEKDAYS_VI[RRULE_DAYS.index(code)].lower()
        k = int(ordinal) if ordinal not in ("", "+", "-") else 0
        if k == 0:
            words.append(name)
        elif k == 1:
            words.append(f"{name} đầu tiên")
        elif k == -1:
            words.append(f"{name} cuối cùng")
        elif k > 0:
            words.append(f"{name} tuần thứ {k}")
        else:
            words.append(f"{name} tuần thứ {-k} từ cuối")
    return ", ".join(words)


def _month_day_word(day: int) -> str:
    if day == -1:
        return "cuối tháng"
    return str(day) if day > 0 else f"thứ {-day} từ cuối tháng"
