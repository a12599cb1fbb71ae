"""The console's schedule form: what a person ticks and types becomes the stored timing
(start, RRULE, until), fires at exactly the times the form says, reads back into the same
form, and any stored timing is told in Vietnamese words."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from starlette.datastructures import FormData

import tests.hostile  # noqa: F401  (the project's hypothesis profile: derandomized)
from channels.settings import ScheduleLimits
from coso.errors import InputError
from schedules.timing import Timing, parse_rrule
from schedules.timing_form import (
    KINDS,
    WEEKDAY_CODES,
    StoredTiming,
    TimingForm,
    describe,
    form_problems,
    limit_problems,
    stored_timing,
    timing_form,
)

ZONE = "Asia/Ho_Chi_Minh"
MANY = settings(max_examples=max(300, settings.default.max_examples))


def weekly(*days: str, times: tuple[str, ...] = ("05:30",), **kw: str) -> TimingForm:
    return TimingForm(kind="weekly", start="03/05/2021", times=times, weekdays=days, **kw)


# --- the words a person reads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "words"),
    [
        (weekly("T2", "T3", "T4", "T5", "T6", "T7"), "Thứ hai đến thứ bảy, 05:30"),
        (
            TimingForm(kind="daily", start="03/05/2021", times=("05:30", "17:00")),
            "Hằng ngày, 05:30 và 17:00",
        ),
        (weekly("T2", "T4", "T6", times=("06:00",)), "Thứ hai, thứ tư, thứ sáu, 06:00"),
        (
            TimingForm(kind="once", start="03/05/2021", times=("06:00",)),
            "Một lần, 06:00 ngày 03/05/2021",
        ),
        (
            TimingForm(
                kind="monthly", start="03/05/2021", times=("07:00",), month_days=("1", "15")
            ),
            "Hằng tháng ngày 1 và 15, 07:00",
        ),
        (weekly("CN", times=("08:00",), interval="2"), "2 tuần một lần, chủ nhật, 08:00"),
        (
            weekly("T2", "T3", "T4", "T5", "T6", "T7", end="31/12/2021"),
            "Thứ hai đến thứ bảy, 05:30, từ 03/05/2021 đến 31/12/2021",
        ),
        (weekly(*WEEKDAY_CODES, times=("17:00",)), "Hằng ngày, 17:00"),
        (weekly("T2", "T3", "T4", "T6"), "Thứ hai đến thứ tư, thứ sáu, 05:30"),
        (
            TimingForm(kind="daily", start="03/05/2021", times=("06:00",), interval="3"),
            "3 ngày một lần, 06:00",
        ),
        (
            TimingForm(
                kind="monthly",
                start="03/05/2021",
                times=("05:30", "11:00", "17:00"),
                month_days=("1", "10", "20"),
                interval="2",
            ),
            "2 tháng một lần, ngày 1, 10 và 20, 05:30, 11:00 và 17:00",
        ),
        (
            TimingForm(
                kind="monthly",
                start="03/05/2021",
                times=("06:00",),
                month_days=("1", "2", "3", "4", "5", "20"),
            ),
            "Hằng tháng ngày 1 đến 5 và 20, 06:00",
        ),
    ],
)
def test_a_filled_form_is_told_in_vietnamese(form: TimingForm, words: str) -> None:
    assert describe(*stored_timing(form)) == words


def test_rules_written_by_hand_are_told_in_the_same_words() -> None:
    start = "2021-05-03T05:30:00"
    assert describe(start, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA") == "Thứ hai đến thứ bảy, 05:30"
    assert (
        describe(start, "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR,SA;BYHOUR=5;BYMINUTE=30")
        == "Thứ hai đến thứ bảy, 05:30"
    )
    assert describe("2021-05-03T06:00:00", "RRULE:FREQ=DAILY;BYHOUR=7,9") == (
        "Hằng ngày, 07:00 và 09:00"
    )
    assert describe(start, "FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20211231T235959") == (
        "Thứ hai, thứ năm, 05:30, từ 03/05/2021 đến 31/12/2021"
    )


def test_a_start_after_today_is_said_and_one_already_running_is_not() -> None:
    timing = stored_timing(weekly("T2", times=("06:00",)))
    assert describe(*timing, today=date(2021, 4, 20)) == "Thứ hai, 06:00, từ 03/05/2021"
    assert describe(*timing, today=date(2021, 6, 1)) == "Thứ hai, 06:00"


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ("FREQ=MONTHLY;BYDAY=1MO;BYHOUR=7", "Hằng tháng, thứ hai đầu tiên, 07:00"),
        ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=7", "Hằng tháng, thứ sáu cuối cùng, 07:00"),
        ("FREQ=WEEKLY;COUNT=40", "40 lần"),
        ("FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=1", "Hằng năm, tháng 5, ngày 1, 06:00"),
        ("FREQ=MINUTELY;INTERVAL=15;BYHOUR=5,6", "15 phút một lần, trong các giờ 05 và 06"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "theo quy tắc riêng"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "không dùng được"),
        ("FREQ=SECONDLY;INTERVAL=0", "không dùng được"),
        ("FREQ=SOMETIMES", "không dùng được"),
    ],
)
def test_rules_the_form_cannot_show_get_general_words(rule: str, said: str) -> None:
    assert timing_form("2021-05-03T06:00:00", rule, None) is None
    words = describe("2021-05-03T06:00:00", rule)
    assert said in words
    assert not words.startswith("Lịch lặp theo quy tắc")  # the general words, not the last resort


# --- the form, filled in badly ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "field", "value", "reason"),
    [
        (weekly(), "weekdays", "", "chọn ít nhất một thứ"),
        (weekly("T8"), "weekdays", "T8", "không phải thứ trong tuần"),
        (weekly("T2", times=("25:00",)), "times", "25:00", "giờ phải từ 00 đến 23"),
        (weekly("T2", times=("06:75",)), "times", "06:75", "phút phải từ 00 đến 59"),
        (weekly("T2", times=("sáng",)), "times", "sáng", "không phải giờ HH:MM"),
        (weekly("T2", times=()), "times", "", "cần ít nhất một giờ phát"),
        (weekly("T2", end="01/05/2021"), "end", "01/05/2021", "trước ngày bắt đầu 03/05/2021"),
        (weekly("T2", end="2021/12/31"), "end", "2021/12/31", "không phải ngày dd/mm/yyyy"),
        (weekly("T2", end="31/02/2021"), "end", "31/02/2021", "không có ngày này"),
        (weekly("T2", interval="0"), "interval", "0", "từ 1 đến 99"),
        (weekly("T2", interval="hai"), "interval", "hai", "từ 1 đến 99"),
        (TimingForm(kind="daily", times=("06:00",)), "start", "", "cần có ngày"),
        (
            TimingForm(kind="daily", start="03/05/1999", times=("06:00",)),
            "start",
            "03/05/1999",
            "ngoài khoảng cho phép",
        ),
        (TimingForm(kind="hourly", start="03/05/2021", times=("06:00",)), "kind", "hourly", ""),
        (
            TimingForm(kind="once", start="03/05/2021", times=("06:00", "17:00")),
            "times",
            "06:00, 17:00",
            "một lần chỉ có một giờ",
        ),
        (
            TimingForm(kind="monthly", start="03/05/2021", times=("06:00",)),
            "month_days",
            "",
            "cần ít nhất một ngày",
        ),
        (
            TimingForm(kind="monthly", start="03/05/2021", times=("06:00",), month_days=("32",)),
            "month_days",
            "32",
            "từ 1 đến 31",
        ),
        (
            TimingForm(
                kind="monthly",
                start="01/02/2021",
                times=("06:00",),
                month_days=("31",),
                interval="12",
            ),
            "month_days",
            "31",
            "không bao giờ phát",
        ),
        (
            TimingForm(
                kind="monthly",
                start="03/05/2021",
                times=("05:30", "11:15", "17:45", "20:00"),
                month_days=tuple(str(d) for d in range(1, 32)),
                interval="2",
            ),
            "times",
            "05:30, 11:15, 17:45, 20:00",
            "quá nhiều giờ phát khác nhau",
        ),
        (
            weekly("CN", end="04/05/2021"),
            "end",
            "04/05/2021",
            "không có lần phát nào từ 03/05/2021 đến 04/05/2021",
        ),
    ],
)
def test_a_bad_field_is_refused_naming_the_field_and_its_value(
    form: TimingForm, field: str, value: str, reason: str
) -> None:
    problems = form_problems(form)
    assert [(p.field, p.value) for p in problems][:1] == [(field, value)]
    assert reason in problems[0].reason
    with pytest.raises(InputError) as refused:
        stored_timing(form)
    assert str(refused.value) == str(problems[0])


def test_every_wrong_field_is_reported_at_once() -> None:
    form = TimingForm(kind="weekly", start="3/5", times=("25:00",), interval="x", end="hôm qua")
    fields = {p.field for p in form_problems(form)}
    assert fields == {"start", "times", "interval", "end", "weekdays"}


def test_times_and_dates_are_read_as_people_write_them() -> None:
    loose = TimingForm(
        kind="weekly",
        start="3/5/2021",
        times=("17h", "5:30", "05:30"),
        weekdays=("cn", "Thứ hai", "MO"),
        end="2021-12-31",
    )
    assert stored_timing(loose) == StoredTiming(
        "2021-05-03T05:30:00",
        "FREQ=DAILY;BYDAY=MO,SU;BYHOUR=5,17;BYMINUTE=0,30;BYSETPOS=2,3",
        "2021-12-31T23:59:59",
    )
    assert timing_form(*stored_timing(loose)) == TimingForm(
        kind="weekly",
        start="03/05/2021",
        times=("05:30", "17:00"),
        weekdays=("T2", "CN"),
        end="31/12/2021",
    )


def test_posted_form_data_is_read_field_by_field() -> None:
    posted = FormData(
        [
            ("kind", "weekly"),
            ("start", "03/05/2021"),
            ("weekdays", "T2"),
            ("weekdays", "T4"),
            ("times", "05:30, 17:00"),
            ("interval", ""),
            ("end", ""),
            ("csrf", "ignored"),
        ]
    )
    form = TimingForm.from_fields(posted)
    assert form.weekdays == ("T2", "T4")
    assert form.times == ("05:30", "17:00")
    assert describe(*stored_timing(form)) == "Thứ hai, thứ tư, 05:30 và 17:00"
    plain = TimingForm.from_fields({"kind": "monthly", "month_days": "1 và 15", "times": "7h"})
    assert plain.month_days == ("1", "15") and plain.times == ("7h",)


def test_fields_a_kind_does_not_use_are_ignored() -> None:
    once = TimingForm(
        kind="once", start="03/05/2021", times=("06:00",), weekdays=("T9",), end="x", interval="y"
    )
    assert stored_timing(once) == StoredTiming("2021-05-03T06:00:00", None, None)


def test_a_stored_start_later_in_the_day_reads_as_the_first_day_it_fires() -> None:
    form = timing_form("2021-05-03T18:00:00", "FREQ=DAILY;BYHOUR=6;BYMINUTE=0", None)
    assert form == TimingForm(kind="daily", start="04/05/2021", times=("06:00",))


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;COUNT=40",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=DAILY;BYHOUR=5,17;BYMINUTE=0,30;BYSETPOS=1,4",  # 05:00 and 17:30: a form
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=HOURLY",
        "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=MO,SU",
        "FREQ=DAILY;BYSECOND=30",
    ],
)
def test_a_rule_reads_back_only_into_a_form_that_fires_the_same(rule: str) -> None:
    start = "2021-05-03T05:00:00"
    form = timing_form(start, rule, None)
    if form is None:
        return
    stored = stored_timing(form)
    assert _local_firings(StoredTiming(start, rule, None), 400) == _local_firings(stored, 400)


def test_a_form_beyond_the_channel_bounds_is_refused_on_the_field_to_change() -> None:
    limits = ScheduleLimits(min_interval="1h", max_per_day=2, max_reach="731d")
    now = datetime(2021, 5, 1, 12, 0)
    close = TimingForm(kind="daily", start="03/05/2021", times=("05:30", "05:45"))
    [problem] = limit_problems(close, limits, now, name="Sáng", channel="loa")
    assert (problem.field, problem.value) == ("times", "05:30, 05:45")
    assert "min_interval" in problem.reason
    many = TimingForm(kind="daily", start="03/05/2021", times=("05:30", "11:00", "17:00"))
    assert [p.field for p in limit_problems(many, limits, now)] == ["times"]
    far = TimingForm(kind="daily", start="03/05/2021", times=("05:30",), end="31/12/2025")
    [problem] = limit_problems(far, limits, now)
    assert (problem.field, problem.value) == ("end", "31/12/2025")
    ok = TimingForm(kind="daily", start="03/05/2021", times=("05:30", "17:00"), end="31/12/2021")
    assert limit_problems(ok, limits, now) == []


# --- properties -------------------------------------------------------------------------------

clock_times = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]) | st.integers(0, 59))


@st.composite
def forms(draw: st.DrawFn, most_interval: int = 99) -> TimingForm:
    """Forms as the page writes them back: dd/mm/yyyy, HH:MM, lists sorted, no repeats."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    start = draw(st.dates(date(2020, 1, 1), date(2032, 12, 31)))
    picked = draw(st.lists(clock_times, min_size=1, max_size=4, unique=True))
    times = tuple(f"{h:02d}:{m:02d}" for h, m in sorted(picked))
    if kind == "once":
        return TimingForm(kind=kind, start=f"{start:%d/%m/%Y}", times=times[:1])
    interval = draw(st.integers(1, 3) | st.integers(1, most_interval))
    end = draw(st.none() | st.integers(0, 800).map(lambda n: start + timedelta(days=n)))
    weekdays: tuple[str, ...] = ()
    month_days: tuple[str, ...] = ()
    if kind == "weekly":
        days = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
        weekdays = tuple(WEEKDAY_CODES[d] for d in sorted(days))
    if kind == "monthly":
        days = draw(st.lists(st.integers(1, 31), min_size=1, max_size=4, unique=True))
        month_days = tuple(str(d) for d in sorted(days))
    form = TimingForm(
        kind=kind,
        start=f"{start:%d/%m/%Y}",
        times=times,
        weekdays=weekdays,
        month_days=month_days,
        interval=str(interval),
        end=f"{end:%d/%m/%Y}" if end else "",
    )
    assume(not form_problems(form))  # e.g. no firing between start and end
    return form


@MANY
@given(forms())
def test_a_form_reads_back_from_what_it_stores(form: TimingForm) -> None:
    stored = stored_timing(form)
    parse_rrule(stored.rrule or "FREQ=DAILY", datetime.fromisoformat(stored.start_local))
    assert timing_form(*stored) == form


@MANY
@given(forms(), st.none() | st.dates(date(2019, 1, 1), date(2034, 1, 1)))
def test_every_form_is_told_in_words_of_its_own(form: TimingForm, today: date | None) -> None:
    words = describe(*stored_timing(form), today=today)
    assert "quy tắc" not in words  # the form's own words, not the general ones
    assert all(t in words for t in form.times)
    assert not words[0].islower()
    n = form.interval
    heads = {
        "once": (f"Một lần, {form.times[0]} ngày {form.start}",),
        "daily": ("Hằng ngày, " if n == "1" else f"{n} ngày một lần, ",),
        "weekly": ("Thứ", "Chủ nhật", "Hằng ngày, ") if n == "1" else (f"{n} tuần một lần, ",),
        "monthly": ("Hằng tháng ngày " if n == "1" else f"{n} tháng một lần, ngày ",),
    }[form.kind]
    assert words.startswith(heads), words
    if form.end:
        assert words.endswith(f"từ {form.start} đến {form.end}")


@MANY
@given(forms(most_interval=4))
def test_the_stored_rule_fires_exactly_when_the_form_says(form: TimingForm) -> None:
    assert _local_firings(stored_timing(form), 400) == _expected_firings(form, 400)


rule_parts = st.fixed_dictionaries(
    {"FREQ": st.sampled_from(["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY"])},
    optional={
        "INTERVAL": st.integers(0, 5).map(str),
        "COUNT": st.integers(0, 30).map(str),
        "UNTIL": st.dates(date(2020, 1, 1), date(2023, 1, 1)).map(lambda d: f"{d:%Y%m%d}T120000"),
        "BYDAY": st.lists(
            st.tuples(
                st.sampled_from(["", "1", "-1", "2", "+3"]),
                st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]),
            ).map("".join),
            min_size=1,
            max_size=3,
        ).map(",".join),
        "BYMONTHDAY": st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=3).map(
            lambda xs: ",".join(map(str, xs))
        ),
        "BYMONTH": st.integers(1, 12).map(str),
        "BYHOUR": st.lists(st.integers(0, 23), min_size=1, max_size=3).map(
            lambda xs: ",".join(map(str, xs))
        ),
        "BYMINUTE": st.lists(st.integers(0, 59), min_size=1, max_size=3).map(
            lambda xs: ",".join(map(str, xs))
        ),
        "BYSECOND": st.sampled_from(["0", "30"]),
        "BYSETPOS": st.sampled_from(["1", "-1", "2,3", "400"]),
        "WKST": st.sampled_from(["MO", "SU"]),
    },
)


@pytest.mark.filterwarnings("ignore:Using both 'count' and 'until'")  # rules as others write
@settings(max_examples=max(150, settings.default.max_examples))
@given(rule_parts, st.datetimes(datetime(2020, 1, 1), datetime(2022, 12, 31)))
def test_any_rule_gets_words_without_failing(parts: dict[str, str], start: datetime) -> None:
    rule = ";".join(f"{k}={v}" for k, v in parts.items())
    start = start.replace(microsecond=0)
    words = describe(start.isoformat(), rule)
    assert words and not words.startswith("Lịch lặp theo quy tắc"), (rule, words)
    form = timing_form(start.isoformat(), rule, None)
    if form is not None:  # read back only when it fires the same
        assert _local_firings(StoredTiming(start.isoformat(), rule, None), 120) == (
            _local_firings(stored_timing(form), 120)
        )


# --- helpers ----------------------------------------------------------------------------------


def _local_firings(stored: StoredTiming, days: int) -> list[datetime]:
    """What coso's timer fires for `stored` in its first `days` days, as local times."""
    start = datetime.fromisoformat(stored.start_local)
    tz = ZoneInfo(ZONE)
    timing = Timing(
        start_local=start,
        zone=ZONE,
        rrule=stored.rrule,
        until_local=datetime.fromisoformat(stored.until_local) if stored.until_local else None,
    )
    first = datetime.combine(start.date(), time()).replace(tzinfo=tz)
    last = first + timedelta(days=days)
    fired = timing.fire_times(first - timedelta(seconds=1), last, most=100_000)
    return [t.astimezone(tz).replace(tzinfo=None) for t in fired]


def _expected_firings(form: TimingForm, days: int) -> list[datetime]:
    """What the form says, worked out day by day from its fields (no RRULE involved)."""
    start = datetime.strptime(form.start, "%d/%m/%Y").date()
    times = [time(int(t[:2]), int(t[3:])) for t in form.times]
    if form.kind == "once":
        return [datetime.combine(start, times[0])]
    end = datetime.strptime(form.end, "%d/%m/%Y").date() if form.end else None
    n = int(form.interval)
    weekdays = {WEEKDAY_CODES.index(d) for d in form.weekdays}
    month_days = {int(d) for d in form.month_days}
    week_one = start - timedelta(days=start.weekday())
    found = []
    for i in range(days + 1):
        day = start + timedelta(days=i)
        if end is not None and day > end:
            break
        if form.kind == "daily":
            fires = i % n == 0
        elif form.kind == "weekly":
            weeks = (day - timedelta(days=day.weekday()) - week_one).days // 7
            fires = day.weekday() in weekdays and weeks % n == 0
        else:
            months = (day.year - start.year) * 12 + day.month - start.month
            fires = day.day in month_days and months % n == 0
        if fires:
            found += [datetime.combine(day, t) for t in times]
    last = datetime.combine(start, time()) + timedelta(days=days)
    return [t for t in found if t <= last]


def test_the_oracle_itself_counts_a_known_week() -> None:
    form = weekly("T2", "T4", times=("05:30", "17:00"))
    assert _expected_firings(form, 7) == [
        datetime(2021, 5, 3, 5, 30),
        datetime(2021, 5, 3, 17, 0),
        datetime(2021, 5, 5, 5, 30),
        datetime(2021, 5, 5, 17, 0),
    ]
    assert _local_firings(stored_timing(form), 7) == _expected_firings(form, 7)
