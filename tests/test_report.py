"""The report tells what really happened. A quarter of a plan is played out on the four
channels with a clock the test turns (loudspeakers that play, fail or never answer, a
station confirmed, refused or left unconfirmed, SMS delivered and undelivered, posts, a
week coso was down); the test keeps its own record of what it made happen, computes the
figures from that record, and compares them with `coso report` for the whole province, one
commune, by week and by content."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels import registry
from channels.base import Accepted, Channel, Outbound, Outcome
from channels.states import DELIVERED, FAILED, PLAYED, SENT
from coso.clock import ManualClock, as_utc
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.host import EngineHost
from dispatcher.models import Delivery
from dispatcher.outcome_counts import differences
from dispatcher.report.build import build_report
from dispatcher.report.periods import parse_period
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.helpers import Accepting
from tests.loudspeakers import clip, speaker_settings
from tests.plans import write_plan
from tests.sms import e164, sms_settings

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
COMMUNES = ("06040", "06046")  # Thất Khê, Tràng Định (province 20, Lạng Sơn)
CLIPS = {"loa-sang": 30.0, "loa-chieu": 45.0}  # seconds
DOWN_WEEK = date(2021, 5, 10)  # coso was not running from this Monday to the Sunday after
runner = CliRunner()


class Posting(Channel):
    name = "web"
    resend_safe = True

    def send(self, message: Outbound) -> Accepted:
        return Accepted(state=DELIVERED, event="published")


def _plan(audio: dict[str, Path]) -> str:
    speakers = "".join(
        f'[[endpoints]]\nchannel = "loudspeaker"\naddress = "loa-{u}-{n}"\nunit = "{u}"\n\n'
        for u in COMMUNES
        for n in (1, 2)
    )
    stations = "".join(
        f'[[endpoints]]\nchannel = "station"\naddress = "station:{u}"\nunit = "{u}"\n\n'
        for u in COMMUNES
    )
    phones = "".join(
        f'[[endpoints]]\nchannel = "sms"\naddress = "{e164(n)}"\nunit = "{COMMUNES[n % 2]}"\n\n'
        for n in range(1, 6)
    )
    return f"""\
[plan]
number = "40/KH-UBND"
title = "Tuyên truyền cải cách hành chính quý II năm 2021"
issuer = "UBND tỉnh Lạng Sơn"
period_start = 2021-04-01
period_end = 2021-06-30

[[targets]]
channel = "loudspeaker"
count = 2
per = "week"
units = ["20"]

[[targets]]
channel = "station"
count = 1
per = "week"
units = ["20"]

[[targets]]
channel = "sms"
count = 1
per = "month"
units = ["{COMMUNES[0]}"]

[[content]]
key = "loa-sang"
kind = "audio"
title = "Bản tin sáng"
state = "approved"
audio = "{audio["loa-sang"]}"

[[content]]
key = "loa-chieu"
kind = "audio"
title = "Bản tin chiều"
state = "approved"
audio = "{audio["loa-chieu"]}"

[[content]]
key = "doc-dai"
kind = "text"
title = "Thủ tục mới"
body = "Kính thưa bà con: hồ sơ hộ tịch nộp trực tuyến."
state = "approved"

[[content]]
key = "tin-nhan"
kind = "text"
title = "Nhắc nộp hồ sơ"
body = "UBND xa: ho so ho tich nop truc tuyen."
state = "approved"

{speakers}{stations}{phones}[[endpoints]]
channel = "web"
address = "bulletin:{COMMUNES[0]}"
unit = "{COMMUNES[0]}"

[[schedules]]
name = "Loa sáng thứ hai"
content = "loa-sang"
channel = "loudspeaker"
targets = {{ units = ["20"] }}
start = 2021-04-05T06:00:00
rrule = "FREQ=WEEKLY;BYDAY=MO"
until = 2021-06-30
validity = "1h"
misfire_grace = "10m"

[[schedules]]
name = "Loa chiều thứ năm"
content = "loa-chieu"
channel = "loudspeaker"
targets = {{ units = ["20"] }}
start = 2021-04-01T17:00:00
rrule = "FREQ=WEEKLY;BYDAY=TH"
until = 2021-06-30
validity = "1h"
misfire_grace = "10m"

[[schedules]]
name = "Đài xã thứ tư"
content = "doc-dai"
channel = "station"
targets = {{ units = ["20"] }}
start = 2021-04-07T17:30:00
rrule = "FREQ=WEEKLY;BYDAY=WE"
until = 2021-06-30
validity = "2h"
misfire_grace = "10m"

[[schedules]]
name = "Tin nhắn đầu tháng"
content = "tin-nhan"
channel = "sms"
targets = {{ units = ["20"] }}
start = 2021-04-01T08:00:00
rrule = "FREQ=MONTHLY;BYMONTHDAY=1"
until = 2021-06-30
validity = "6h"
misfire_grace = "10m"

[[schedules]]
name = "Bản tin trang xã"
content = "doc-dai"
channel = "web"
targets = {{ units = ["{COMMUNES[0]}"] }}
start = 2021-04-02T07:00:00
rrule = "FREQ=WEEKLY;BYDAY=FR"
until = 2021-06-30
validity = "12h"
misfire_grace = "10m"
"""


@dataclass(frozen=True)
class Made:
    """What the test made happen to one delivery."""

    channel: str
    unit: str
    content: str
    day: date  # local day of its slot
    outcome: str  # played, failed, undelivered, expired, confirmed, unconfirmed, delivered, missed
    endpoint: int
    clip: float = 0.0


@dataclass
class Quarter:
    engine: Engine
    settings: Settings
    record: list[Made]


@pytest.fixture
def quarter(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> Iterator[Quarter]:
    settings = speaker_settings(settings, broker_url, tmp_path)
    settings = sms_settings(settings, "http://127.0.0.1:9")
    audio = {key: clip(tmp_path, seconds, 440 + int(seconds)) for key, seconds in CLIPS.items()}
    clock = ManualClock(datetime(2021, 3, 31, 12, tzinfo=UTC))
    import_plan_file(engine, settings, write_plan(tmp_path, _plan(audio)), clock.now())
    station = registry.get("station")
    host = EngineHost(engine, settings, clock)
    coso = Dispatcher(
        engine,
        settings,
        clock,
        channels={
            "loudspeaker": Accepting("loudspeaker", settings),
            "sms": Accepting("sms", settings),
            "web": Posting(),
            "station": station.build(host, registry.settings_of(settings, "station")),
        },
    )
    rng = random.Random(20210401)
    record: list[Made] = []
    keys = _content_keys(engine)
    seen: set[int] = set()
    day = date(2021, 3, 31)
    while day <= date(2021, 6, 30):
        day += timedelta(days=1)
        if DOWN_WEEK <= day < DOWN_WEEK + timedelta(days=7):
            continue  # coso is not running: what was due this week is found missed later
        for hour, minute in ((6, 0), (7, 0), (8, 0), (17, 0), (17, 30)):
            slot = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)
            clock.set(as_utc(slot) + timedelta(seconds=1))
            coso.tick()
            fresh = [d for d in _deliveries(engine) if d.id not in seen]
            seen |= {d.id for d in fresh}
            for d in fresh:
                record.append(_answer(coso, d, rng, keys[d.content_id], clock))
            # The end of every validity: what nobody answered expires, or stays unconfirmed.
            clock.set(as_utc(slot) + timedelta(hours=2, minutes=1))
            coso.host.expire("loudspeaker", (SENT,), clock.now(), "no player acknowledged it")
            coso.services["station"].upkeep(clock.now())
    for sender in coso.senders.values():
        sender.close()
    yield Quarter(engine, settings, record)


def _content_keys(engine: Engine) -> dict[int, str]:
    from content.models import ContentItem

    with engine.connect() as conn:
        return dict(conn.execute(select(ContentItem.id, ContentItem.key)).all())


def _deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.__table__)).all())


def _answer(coso: Dispatcher, d: Any, rng: random.Random, key: str, clock: ManualClock) -> Made:
    """Decide what became of a fresh delivery, make it happen, and say what it was."""
    slot_day = as_utc(d.scheduled_for).astimezone(ZONE).date()
    made: dict[str, Any] = {
        "channel": d.channel,
        "unit": d.unit_code,
        "content": key,
        "day": slot_day,
        "endpoint": d.endpoint_id,
    }
    at = clock.now()
    if d.state == "missed":
        return Made(**made, outcome="missed")
    roll = rng.random()
    if d.channel == "loudspeaker":
        if roll < 0.75:
            coso.host.receive([Outcome(d.id, PLAYED, "played", at, f"player:{d.endpoint_id}")])
            return Made(**made, outcome="played", clip=CLIPS[key])
        if roll < 0.9:
            failure = Outcome(d.id, FAILED, "failed", at, "player", error="mất điện")
            coso.host.receive([failure])
            return Made(**made, outcome="failed")
        return Made(**made, outcome="expired")  # no player answered
    if d.channel == "station":
        people = registry.get("station").confirmed_by_people
        assert people is not None
        if roll < 0.6:
            people.confirm(coso.host, d.id, "van-hanh", None)
            return Made(**made, outcome="confirmed")
        if roll < 0.8:
            people.could_not_play(coso.host, d.id, "van-hanh", "mat_dien", "")
            return Made(**made, outcome="failed")
        return Made(**made, outcome="unconfirmed")
    if d.channel == "sms":
        provider = f"SM{d.id:030d}"
        if roll < 0.7:
            coso.host.receive([Outcome(None, DELIVERED, "delivered", at, "gateway", provider)])
            return Made(**made, outcome="delivered")
        undelivered = Outcome(None, FAILED, "undelivered", at, "gateway", provider, error="30003")
        coso.host.receive([undelivered])
        return Made(**made, outcome="undelivered")
    assert d.state == DELIVERED, d
    return Made(**made, outcome="delivered")


# The figures, from the test's own record.
DONE = {"played", "confirmed", "delivered"}


def expected(record: list[Made]) -> dict[str, Counter[str]]:
    """channel → figure → value, as the report defines them (docs/report.md)."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    reached: dict[str, set[int]] = defaultdict(set)
    airtime: Counter[str] = Counter()
    for m in record:
        c = out[m.channel]
        c["expected"] += 1
        if m.outcome in DONE:
            c["done"] += 1
            c[m.outcome] += 1
            reached[m.channel].add(m.endpoint)
            airtime[m.channel] += m.clip
        elif m.outcome == "undelivered":
            c["failed"] += 1
            c["undelivered"] += 1
        else:
            c[m.outcome] += 1
    for channel, c in out.items():
        c["reached"] = len(reached[channel])
        c["airtime_minutes"] = round(airtime[channel] / 60, 1)  # type: ignore[assignment]
    return out


def figures_of(tally: Any) -> Counter[str]:
    keys = ("expected", "done", "played", "confirmed", "delivered", "failed", "undelivered",
            "expired", "unconfirmed", "missed")  # fmt: skip
    found = Counter({k: tally.value(k) for k in keys if tally.value(k)})
    found["reached"] = tally.reached or 0
    if tally.airtime_minutes:
        found["airtime_minutes"] = tally.airtime_minutes  # type: ignore[assignment]
    return found


def test_the_quarter_reported_for_the_province_is_what_happened(quarter: Quarter) -> None:
    from dispatcher.queries import find_plan

    record = quarter.record
    outcomes = Counter(m.outcome for m in record)
    # The simulation did what it set out to: every kind of outcome, on every channel.
    assert {"played", "failed", "expired", "confirmed", "unconfirmed", "delivered",
            "undelivered", "missed"} <= set(outcomes), outcomes  # fmt: skip
    plan = find_plan(quarter.engine, "40/KH-UBND")
    report = build_report(
        quarter.engine,
        plan,
        parse_period("Q2/2021", None, None, plan.period_start, plan.period_end),
        unit="20",
        now=datetime(2021, 7, 1, tzinfo=UTC),
    )
    want = expected(record)
    got = {channel: figures_of(t) for channel, t in report.channels.items()}
    # The counts the report reads are what counting the log gives.
    assert differences(quarter.engine) == []
    assert got == {channel: +c for channel, c in want.items()}
    # The lines by channel say the same (distinct endpoints reached included).
    assert {line.key[0]: figures_of(line.tally) for line in report.lines} == got
    # Each target, counted by the test: per commune and week (or month), what it asks —
    # a week cut by the quarter's edge in proportion, rounded down — against what reached.
    speakers, station, sms = report.targets
    for target, channel, count, units, spans in (
        (speakers, "loudspeaker", 2, COMMUNES, _weeks()),
        (station, "station", 1, COMMUNES, _weeks()),
        (sms, "sms", 1, COMMUNES[:1], _months()),
    ):
        need = got = 0
        below = []
        for unit in units:
            asked_unit = got_unit = 0
            for first, last, full in spans:
                asked = count * ((last - first).days + 1) // full
                done = sum(
                    1
                    for m in record
                    if (m.channel, m.unit) == (channel, unit)
                    and m.outcome in DONE
                    and first <= m.day <= last
                )
                asked_unit += asked
                got_unit += min(done, asked)
            need += asked_unit
            got += got_unit
            if got_unit < asked_unit:
                below.append(unit)
        assert (target.units, target.required, target.achieved) == (len(units), need, got)
        assert [u.code for u in target.below] == sorted(below, key=_name)
        assert target.percent == round(100 * got / need, 1)
    assert speakers.periods == 14  # 1–4 April, twelve whole weeks, 28–30 June


def _name(code: str) -> str:
    return {"06040": "Xã Thất Khê", "06046": "Xã Tràng Định"}[code]


def _weeks() -> list[tuple[date, date, int]]:
    spans = [(date(2021, 4, 1), date(2021, 4, 4), 7)]
    monday = date(2021, 4, 5)
    while monday + timedelta(days=6) <= date(2021, 6, 30):
        spans.append((monday, monday + timedelta(days=6), 7))
        monday += timedelta(days=7)
    return [*spans, (monday, date(2021, 6, 30), 7)]


def _months() -> list[tuple[date, date, int]]:
    return [
        (date(2021, 4, 1), date(2021, 4, 30), 30),
        (date(2021, 5, 1), date(2021, 5, 31), 31),
        (date(2021, 6, 1), date(2021, 6, 30), 30),
    ]


def test_one_commune_by_week_and_by_content_through_the_command_line(
    quarter: Quarter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", quarter.settings.database.url)
    commune = COMMUNES[1]
    mine = [m for m in quarter.record if m.unit == commune]
    answer = runner.invoke(
        app,
        ["report", "40/KH-UBND", "--period", "Q2/2021", "--unit", commune, "--by", "week",
         "--format", "csv"],
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    rows = list(csv.reader(io.StringIO(answer.output.lstrip("\ufeff"))))
    heading = rows[1]
    lines = rows[2 : rows.index([])]
    col = {name: heading.index(name) for name in heading}
    by_week: Counter[tuple[str, str]] = Counter()
    for line in lines:
        by_week[(line[0], line[1])] = int(line[col["Kế hoạch"]])
    made: Counter[tuple[str, str]] = Counter()
    titles = {p.name: p.title for p in registry.plugins().values()}
    from dispatcher.report.periods import week_of

    for m in mine:
        made[(week_of(m.day)[1], titles[m.channel])] += 1
    assert by_week == made
    assert all(m.unit == commune for m in mine) and mine

    by_content = runner.invoke(app, ["report", "40/KH-UBND", "--by", "content", "--format", "csv"])
    assert by_content.exit_code == 0, by_content.output
    rows = list(csv.reader(io.StringIO(by_content.output.lstrip("\ufeff"))))
    lines = rows[2 : rows.index([])]
    heading = rows[1]
    done_col = heading.index("Đã đến người nghe")
    got = Counter()
    for line in lines:
        got[line[0]] += int(line[done_col])
    content_titles = {"loa-sang": "Bản tin sáng", "loa-chieu": "Bản tin chiều",
                      "doc-dai": "Thủ tục mới", "tin-nhan": "Nhắc nộp hồ sơ"}  # fmt: skip
    want = Counter()
    for m in quarter.record:
        if m.outcome in DONE:
            want[content_titles[m.content]] += 1
    assert +got == +want


LEGACY_UNITS = """code,name,kind,level,parent_code,new_codes
20,Tỉnh Lạng Sơn,tỉnh,1,,20
178,Huyện Tràng Định,huyện,2,20,06040;06046
179,Huyện Bình Gia,huyện,2,20,06112
"""

PLAN_2021 = """\
[plan]
number = "95/KH-UBND"
title = "Tuyên truyền cải cách hành chính năm 2021"
issuer = "UBND tỉnh Lạng Sơn"
period_start = 2021-05-01
period_end = 2021-05-31

[[targets]]
channel = "web"
count = 1
per = "week"
units = ["178"]

[[content]]
key = "cchc"
title = "Thủ tục mới"
body = "Kính gửi bà con."
state = "approved"

[[endpoints]]
channel = "web"
address = "bulletin:06040"
unit = "06040"

[[endpoints]]
channel = "web"
address = "bulletin:06046"
unit = "06046"

[[endpoints]]
channel = "web"
address = "bulletin:06112"
unit = "06112"

[[schedules]]
name = "Thứ hai"
content = "cchc"
channel = "web"
targets = { units = ["178", "179"] }
start = 2021-05-03T06:00:00
rrule = "FREQ=WEEKLY;BYDAY=MO"
until = 2021-05-31
validity = "12h"
"""


def test_a_2021_plan_with_a_district_target_is_reported_by_the_old_districts(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path, monkeypatch: Any
) -> None:
    from coso.units import import_legacy_units

    legacy = tmp_path / "legacy.csv"
    legacy.write_text(LEGACY_UNITS, encoding="utf-8")
    import_legacy_units(engine, legacy)
    import_plan_file(engine, settings, write_plan(tmp_path, PLAN_2021), clock.now())
    coso = Dispatcher(engine, settings, clock, channels={"web": Posting()})
    for week in range(5):  # the Mondays of May 2021: 3, 10, 17, 24, 31
        clock.set(datetime(2021, 5, 2, 23, 0, 1, tzinfo=UTC) + timedelta(weeks=week))
        coso.tick()
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COLUMNS", "250")

    def csv_lines(*args: str) -> tuple[list[list[str]], str]:
        answer = runner.invoke(app, ["report", "95/KH-UBND", "--by", "unit", *args])
        assert answer.exit_code == 0, answer.output
        rows = list(csv.reader(io.StringIO(answer.output.lstrip("\ufeff"))))
        return rows[2 : rows.index([])], answer.output

    old, _ = csv_lines("--legacy-units", "--format", "csv")
    assert [(r[0], r[2]) for r in old] == [
        ("Huyện Tràng Định (178)", "10"),  # two communes, five Mondays
        ("Huyện Bình Gia (179)", "5"),
    ]
    today, _ = csv_lines("--format", "csv")
    assert [(r[0], r[2]) for r in today] == [
        ("Xã Thất Khê (06040)", "5"),
        ("Xã Tràng Định (06046)", "5"),
        ("Xã Bình Gia (06112)", "5"),
    ]
    table = runner.invoke(app, ["report", "95/KH-UBND", "--by", "unit", "--legacy-units"])
    assert "trước 01/07/2025" in table.output  # the report says which units it used
    # The district's target — one post a week in each of its communes — is kept by today's
    # communes: two of them, four whole weeks of May (1–2 and 31 May, parts of weeks too
    # short for a post, ask nothing).
    (target,) = build_report(
        engine,
        _plan_2021(engine),
        parse_period("05/2021", None, None, date(2021, 5, 1), date(2021, 5, 31)),
        units="legacy",
        now=clock.now(),
    ).targets
    assert (target.units, target.required, target.achieved, target.below) == (2, 8, 8, ())


def _plan_2021(engine: Engine) -> Any:
    from dispatcher.queries import find_plan

    return find_plan(engine, "95/KH-UBND")


def _web_plan(number: str, *, units: str, extra: str = "") -> str:
    return f"""\
[plan]
number = "{number}"
title = "Bản tin trang xã"
period_start = 2021-05-03
period_end = 2021-05-30
{extra}
[[content]]
key = "tin"
title = "Thủ tục mới"
body = "Kính gửi bà con."
state = "approved"

[[endpoints]]
channel = "web"
address = "bulletin:06040"
unit = "06040"

[[endpoints]]
channel = "web"
address = "bulletin:06046"
unit = "06046"

[[endpoints]]
channel = "web"
address = "bulletin:06112"
unit = "06112"

[[schedules]]
name = "Thứ hai"
content = "tin"
channel = "web"
targets = {{ units = {units} }}
start = 2021-05-03T06:00:00
rrule = "FREQ=WEEKLY;BYDAY=MO"
until = 2021-05-30
validity = "12h"
"""


def _mondays(engine: Engine, settings: Settings, clock: ManualClock, weeks: int) -> None:
    coso = Dispatcher(engine, settings, clock, channels={"web": Posting()})
    for week in range(weeks):
        clock.set(datetime(2021, 5, 2, 23, 0, 1, tzinfo=UTC) + timedelta(weeks=week))
        coso.tick()


def test_an_organisations_report_rolls_up_the_units_it_serves(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    from dispatcher.queries import find_plan

    province = _web_plan("8/KH-UBND", units='["20"]')
    import_plan_file(engine, settings, write_plan(tmp_path, province), clock.now())
    # The district's culture centre serves two of the three communes (through a plan of its
    # own): its report of the province's plan is theirs.
    centre = "Trung tâm Văn hóa huyện Tràng Định"
    district = _web_plan(
        "9/KH-UBND", units='["06040", "06046"]', extra=f'organisation = "{centre}"\n'
    )
    (tmp_path / "district").mkdir()
    import_plan_file(engine, settings, write_plan(tmp_path / "district", district), clock.now())
    _mondays(engine, settings, clock, 4)
    plan = find_plan(engine, "8/KH-UBND")
    period = parse_period(None, None, None, plan.period_start, plan.period_end)
    report = build_report(engine, plan, period, unit=centre, by=("unit",), now=clock.now())
    assert report.unit_name == centre
    lines = [(ln.labels[0], ln.tally.counts["done"], ln.tally.reached) for ln in report.lines]
    assert lines == [("Xã Thất Khê (06040)", 4, 1), ("Xã Tràng Định (06046)", 4, 1)]
    assert (report.total.counts["done"], report.channels["web"].reached) == (8, 2)
    whole = build_report(engine, plan, period, by=("unit",), now=clock.now())
    assert (len(whole.lines), whole.total.counts["done"]) == (3, 12)


def test_a_target_that_names_no_units_asks_of_every_unit_the_plan_reaches(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    from dispatcher.queries import find_plan

    text = _web_plan(
        "10/KH-UBND",
        units='["06040", "06046"]',
        extra='\n[[targets]]\nchannel = "web"\ncount = 2\nper = "week"\n',
    )
    import_plan_file(engine, settings, write_plan(tmp_path, text), clock.now())
    _mondays(engine, settings, clock, 4)
    plan = find_plan(engine, "10/KH-UBND")
    period = parse_period(None, None, None, plan.period_start, plan.period_end)
    (target,) = build_report(engine, plan, period, now=clock.now()).targets
    # Two communes (Bình Gia has a web site, but no schedule of the plan reaches it), four
    # weeks, two posts a week asked, one a week made.
    assert (target.units, target.periods, target.required, target.achieved) == (2, 4, 16, 8)
    assert [u.code for u in target.below] == ["06040", "06046"]
    assert target.percent == 50.0


def test_every_figure_is_defined_in_the_documentation() -> None:
    from dispatcher.report.figures import FIGURES

    doc = (Path(__file__).parent.parent / "docs" / "report.md").read_text(encoding="utf-8")
    for key, heading, meaning in FIGURES:
        assert f"| `{key}` | {heading} | {meaning} |" in doc, key


@pytest.mark.parametrize(
    ("period", "since", "until", "says"),
    [
        ("Q5/2021", None, None, "period = 'Q5/2021'"),
        ("13/2021", None, None, "period = '13/2021': tháng phải từ 01 đến 12"),
        ("0000", None, None, "period = '0000': năm phải từ 2000 đến 2199"),
        ("9999", None, None, "period = '9999': năm phải từ 2000 đến 2199"),
        (None, "29/02/2021", None, "from = '29/02/2021': không có ngày này trong lịch"),
        (None, "01/01/0001", None, "from = '01/01/0001': năm phải từ 2000 đến 2199"),
        (None, "01/01/2030", None, "from = '01/01/2030': kỳ báo cáo kết thúc"),
        (None, "10/05/2021", "01/05/2021", "until = '01/05/2021': kỳ báo cáo kết thúc"),
        ("05/2021", "01/05/2021", None, "period = '05/2021'"),
    ],
)
def test_a_period_that_is_not_one_is_refused_naming_the_field(
    period: str | None, since: str | None, until: str | None, says: str
) -> None:
    from coso.errors import InputError

    with pytest.raises(InputError) as refused:
        parse_period(period, since, until, date(2021, 4, 1), date(2021, 12, 31))
    assert says in str(refused.value)


def test_periods_people_write() -> None:
    start, end = date(2021, 1, 1), date(2021, 12, 31)
    assert astuple(parse_period("q2/2021", None, None, start, end))[:2] == (
        date(2021, 4, 1),
        date(2021, 6, 30),
    )
    assert astuple(parse_period("02/2020", None, None, start, end))[:2] == (
        date(2020, 2, 1),
        date(2020, 2, 29),
    )
    assert parse_period(None, None, None, start, end).label == "01/01/2021 – 31/12/2021"
