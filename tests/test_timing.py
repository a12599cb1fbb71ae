"""Recurrence in the plan's zone: the same times as RFC 5545 says, however old the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dateutil.rrule import rrulestr

from schedules.timing import Timing

RULES = [
    "FREQ=MINUTELY",
    "FREQ=MINUTELY;INTERVAL=7;BYHOUR=5,6,17",
    "FREQ=SECONDLY;INTERVAL=45",
    "FREQ=HOURLY;INTERVAL=5;BYDAY=MO,WE,FR",
    "FREQ=DAILY;INTERVAL=3;BYHOUR=5,17;BYMINUTE=30",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA;BYHOUR=5,17;BYMINUTE=0",
    "FREQ=MONTHLY;BYMONTHDAY=31",
    "FREQ=DAILY;COUNT=400",
]
START = datetime(2025, 1, 31, 5, 17, 23)
ZONE = "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize("rule", RULES)
def test_fire_times_match_the_plain_rule_long_after_the_start(rule: str) -> None:
    timing = Timing(start_local=START, zone=ZONE, rrule=rule)
    plain = rrulestr(rule, dtstart=START)
    for days_later in (0, 1, 37, 200, 365):
        lo = datetime(2025, 1, 31, tzinfo=UTC) + timedelta(days=days_later, hours=3)
        hi = lo + timedelta(days=4)
        lo_local = (lo + timedelta(hours=7)).replace(tzinfo=None)
        hi_local = (hi + timedelta(hours=7)).replace(tzinfo=None)
        expected = [
            (t - timedelta(hours=7)).replace(tzinfo=UTC)
            for t in plain.between(lo_local, hi_local, inc=True)
            if lo_local < t
        ]
        assert timing.fire_times(lo, hi) == expected, (rule, days_later)


def test_one_off_and_exdates_and_until() -> None:
    once = Timing(start_local=datetime(2021, 5, 3, 6), zone=ZONE)
    at = datetime(2021, 5, 2, 23, tzinfo=UTC)
    assert once.fire_times(at - timedelta(seconds=1), at) == [at]
    assert once.fire_times(at, at + timedelta(days=1)) == []
    weekly = Timing(
        start_local=datetime(2021, 5, 3, 6),
        zone=ZONE,
        rrule="FREQ=WEEKLY",
        until_local=datetime(2021, 5, 24, 6),
        exdates_local=(datetime(2021, 5, 10, 6),),
    )
    times = weekly.fire_times(at - timedelta(days=1), at + timedelta(days=60))
    assert [t.day for t in times] == [2, 16, 23]  # 03/05, 17/05, 24/05 local; 10/05 excluded
