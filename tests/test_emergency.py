"""One emergency, every channel, by reference: declared once, out on each channel with
emergency priority, read back per channel and unit, cancelled everywhere; drills reach
test endpoints only; bad input is refused naming the field and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from channels.boards.programme import programmes
from channels.endpoints import add_endpoints, mark_test
from channels.web.bulletin import bulletin
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputError
from dispatcher.emergency import (
    EmergencyRequest,
    cancel,
    declare,
    emergency_log,
    find,
    last_states,
    progress,
    update,
)
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.emergencies import Emergency
from schedules.models import Plan, Schedule

NOW = datetime(2021, 5, 2, 16, 0, tzinfo=UTC)  # 23:00 in Hà Nội


@pytest.fixture
def places(engine: Engine, settings: Settings, tmp_path: Path) -> Settings:
    """Two communes, each with a bulletin and a screen; in 06040 one more screen, a test one."""
    settings.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": "bulletin:06040", "unit_code": "06040"},
            {"channel": "web", "address": "bulletin:06046", "unit_code": "06046"},
            {"channel": "boards", "address": "screen:cho-06040", "unit_code": "06040"},
            {"channel": "boards", "address": "screen:ubnd-06046", "unit_code": "06046"},
            {"channel": "boards", "address": "screen:thu-06040", "unit_code": "06040"},
        ],
        NOW,
    )
    mark_test(engine, "boards", ["screen:thu-06040"], True)
    return settings


def _run(engine: Engine, settings: Settings, clock: ManualClock) -> None:
    dispatcher = Dispatcher(engine, settings, clock)
    dispatcher.tick()
    dispatcher.stop()


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def test_one_emergency_reaches_boards_and_bulletin_and_is_read_by_its_reference(
    engine: Engine, places: Settings
) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine,
        places,
        EmergencyRequest(text="Bão số 3 đổ bộ: ở trong nhà.", units=["06040", "06046"]),
        NOW,
        "chu-tich",
    )
    assert ref == "KC-0001/2021"
    _run(engine, places, clock)
    found = progress(engine, ref, NOW)
    totals = found.totals()
    assert set(totals) == {"boards", "web"}
    assert totals["web"].reached == 2 and totals["web"].failed == 0
    assert totals["boards"].total == 3  # a test screen is a screen too
    assert {r.unit_code for r in found.rows} == {"06040", "06046"}
    posts = bulletin(engine, now=NOW)
    assert [p["pinned"] for p in posts] == [1, 1]
    assert all("Bão số 3" in p["body_html"] for p in posts)
    with engine.connect() as conn:
        screens = list(
            conn.scalars(select(Delivery.endpoint_id).where(Delivery.channel == "boards"))
        )
        shown = programmes(conn, screens, NOW)
    assert len(shown) == 3
    assert all(items[0]["priority"] == "emergency" for items in shown.values())
    # The progress page's counts are the log's.
    assert {c: (t.reached, t.pending, t.failed) for c, t in totals.items()} == {
        c: (v["reached"], v["pending"], v["failed"]) for c, v in last_states(engine, ref).items()
    }
    events = {e.event for e in emergency_log(engine, ref)}
    assert {"emergency_declared", "published"} <= events


def test_cancel_clears_boards_and_unpins_the_bulletin(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine, places, EmergencyRequest(text="Lũ quét", units=["06040"]), NOW, "chu-tich"
    )
    _run(engine, places, clock)
    later = NOW + timedelta(minutes=5)
    cancel(engine, places, ref, now=later, actor="chu-tich", note="nước đã rút")
    with engine.connect() as conn:
        screens = list(
            conn.scalars(select(Delivery.endpoint_id).where(Delivery.channel == "boards"))
        )
        shown = programmes(conn, screens, later)
    assert all(items == [] for items in shown.values())
    assert [p["pinned"] for p in bulletin(engine, now=later)] == [0]
    assert find(engine, ref).state == "cancelled"
    log = emergency_log(engine, ref)
    cancelled = [e for e in log if e.event == "emergency_cancelled"]
    assert {e.channel for e in cancelled} == {"boards", "web"}
    assert all("nước đã rút" in e.detail for e in cancelled)
    with pytest.raises(InputError) as again:
        cancel(engine, places, ref, now=later, actor="chu-tich")
    assert again.value.field == "reference"


def test_a_drill_reaches_only_test_endpoints_and_says_so(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine,
        places,
        EmergencyRequest(text="Thử còi báo động", units=["06040", "06046"], drill=True),
        NOW,
        "chu-tich",
    )
    _run(engine, places, clock)
    with engine.connect() as conn:
        reached = conn.execute(select(Delivery.channel, Delivery.endpoint_id)).all()
        title = conn.scalar(select(Plan.title).where(Plan.number == ref))
    assert len(reached) == 1 and reached[0].channel == "boards"
    assert "DIỄN TẬP" in (title or "")
    assert bulletin(engine, now=NOW) == []  # no bulletin is a test endpoint
    with engine.connect() as conn:
        shown = programmes(conn, [reached[0].endpoint_id], NOW)[reached[0].endpoint_id]
    assert shown[0]["title"].startswith("[DIỄN TẬP]")
    assert find(engine, ref).drill


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"units": ["99999"]}, "units", "99999"),
        ({"channels": ["fax"]}, "channels", "fax"),
        ({"text": "   "}, "text", "   "),
        ({"until": NOW - timedelta(minutes=1)}, "until", "02/05/2021 22:59"),
        ({"channels": ["loudspeaker"]}, "channels", "loudspeaker"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    engine: Engine, places: Settings, change: dict[str, object], field: str, value: str
) -> None:
    places.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    request = {"text": "Bão", "units": ["06040"], **change}
    with pytest.raises(InputError) as refused:
        declare(engine, places, EmergencyRequest(**request), NOW, "chu-tich")  # type: ignore[arg-type]
    assert refused.value.field == field
    assert str(refused.value.value) == value
    assert _count(engine, Emergency.__table__) == 0
    assert _count(engine, Schedule.__table__) == 0
    assert _count(engine, ActivityEntry.__table__) == 0


def test_an_audio_file_that_is_not_there_is_refused_naming_audio(
    engine: Engine, places: Settings
) -> None:
    places.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    add_endpoints(
        engine, [{"channel": "loudspeaker", "address": "loa-1", "unit_code": "06040"}], NOW
    )
    missing = EmergencyRequest(text="Bão", units=["06040"], audio=Path("/nowhere/bao.mp3"))
    with pytest.raises(InputError) as refused:
        declare(engine, places, missing, NOW, "x")
    assert refused.value.field == "--audio"
    assert "/nowhere/bao.mp3" in str(refused.value)
    assert _count(engine, Emergency.__table__) == 0


def test_new_words_replace_the_old_everywhere(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(engine, places, EmergencyRequest(text="Bão cấp 10", units=["06040"]), NOW, "a")
    _run(engine, places, clock)
    later = NOW + timedelta(minutes=2)
    clock.set(later)
    update(engine, places, ref, text="Bão cấp 12, sơ tán ngay", now=later, actor="a")
    _run(engine, places, clock)
    posts = bulletin(engine, now=later)
    assert [p["pinned"] for p in posts] == [1, 0]
    assert "cấp 12" in posts[0]["body_html"]
    assert find(engine, ref).version == 2
    assert progress(engine, ref, later).totals()["web"].reached == 1


@pytest.fixture
def console(engine: Engine, places: Settings) -> Iterator[str]:
    from dispatcher.web.app import create_app
    from tests.conftest import ServerThread
    from tests.console import make_user

    add_endpoints(
        engine, [{"channel": "web", "address": "bulletin:06112", "unit_code": "06112"}], NOW
    )
    make_user(engine, "van-hanh-a", ["operator"], ["06040"])
    make_user(engine, "van-hanh-b", ["operator"], ["06112"])
    make_user(engine, "xem-a", ["viewer"], ["06040"])
    with ServerThread(create_app(engine, places)) as server:
        yield server.url


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_operator_declares_for_their_commune_and_gets_403_for_another(
    engine: Engine, places: Settings, console: str
) -> None:
    from tests.console import post_form, signed_in

    with signed_in(console, "van-hanh-b") as b:
        refused = post_form(
            b, "/emergencies/new", "/emergencies/new", {"text": "Cháy rừng", "unit": "06040"}
        )
        assert refused.status_code == 403
    assert _count(engine, Emergency.__table__) == 0
    with signed_in(console, "xem-a") as viewer:
        assert viewer.get("/emergencies/new").status_code == 403
    with signed_in(console, "van-hanh-a") as a:
        empty = post_form(a, "/emergencies/new", "/emergencies/new", {"text": " ", "unit": "06040"})
        assert empty.status_code == 400 and "text" in empty.text
        sent = post_form(
            a,
            "/emergencies/new",
            "/emergencies/new",
            {"text": "Cháy rừng ở Thất Khê", "unit": "06040", "channels": "web"},
        )
        assert sent.status_code == 303
        where = sent.headers["location"]
        ref = where.removeprefix("/emergencies/")
        page = a.get(where)
        assert page.status_code == 200 and ref in page.text and "Cháy rừng" in page.text
    with signed_in(console, "van-hanh-b") as b:
        assert b.get(f"/emergencies/{ref}").status_code == 403
        assert b.get(f"/emergencies/{ref}/cancel").status_code == 403
        assert (
            post_form(
                b, "/emergencies", f"/emergencies/{ref}/cancel", {"confirm": "yes"}
            ).status_code
            == 403
        )
    assert find(engine, ref).state == "active"
    assert find(engine, ref).source == "console:van-hanh-a"


def test_a_number_that_opted_out_is_texted_only_when_the_emergency_says_so(
    engine: Engine, places: Settings, tmp_path: Path
) -> None:
    from channels.sms.recipients import record_opt_out
    from coso.db import write
    from tests.sms import e164, import_recipients, phone, sms_dispatcher, write_recipients
    from tests.twilio_server import TwilioServer

    rows = [{"name": f"CD {n}", "phone": phone(n), "unit": "06040", "groups": "xa"} for n in (1, 2)]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    with write(engine) as conn:
        record_opt_out(conn, e164(2), NOW, "sms", "STOP")
    clock = ManualClock(NOW)
    with TwilioServer() as gateway:
        dispatcher = sms_dispatcher(
            engine, places, gateway.url, clock, quiet_start="22:00", quiet_end="07:00"
        )
        try:
            honoured = declare(
                engine,
                places,
                EmergencyRequest(text="Bão", units=["06040"], channels=["sms"]),
                NOW,
                "a",
            )
            dispatcher.tick()
            assert gateway.creates == [e164(1)]  # at 23:00, inside quiet hours
            skipped = declare(
                engine,
                places,
                EmergencyRequest(
                    text="Bão mạnh", units=["06040"], channels=["sms"], skip_opt_outs=True
                ),
                NOW,
                "admin",
            )
            dispatcher.tick()
        finally:
            dispatcher.stop()
    assert sorted(gateway.creates) == sorted([e164(1), e164(1), e164(2)])
    assert progress(engine, honoured).totals()["sms"].failed == 1
    assert progress(engine, skipped).totals()["sms"].failed == 0
    declared = [e for e in emergency_log(engine, skipped) if e.event == "emergency_declared"]
    assert "từ chối" in declared[0].detail and "admin" in declared[0].detail


def test_a_plan_file_marks_test_endpoints_for_drills(
    engine: Engine, places: Settings, tmp_path: Path
) -> None:
    from schedules.importer import import_plan_file
    from tests.plans import write_plan

    plan = """\
[plan]
number = "3/KH-UBND"
title = "Điểm nhận thử nghiệm"
period_start = 2021-01-01
period_end = 2021-12-31

[[endpoints]]
channel = "web"
address = "bulletin:06046-thu"
unit = "06046"
test = true
"""
    import_plan_file(engine, places, write_plan(tmp_path, plan), NOW)
    ref = declare(
        engine, places, EmergencyRequest(text="Thử", units=["06046"], drill=True), NOW, "a"
    )
    _run(engine, places, ManualClock(NOW))
    posts = bulletin(engine, now=NOW)
    assert [p["unit_code"] for p in posts] == ["06046"]
    assert posts[0]["title"].startswith("[DIỄN TẬP]")
    assert progress(engine, ref).totals()["web"].reached == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_command_line_sends_shows_and_cancels_and_names_a_bad_field(
    engine: Engine, places: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    monkeypatch.setenv("COSO_DATABASE__URL", places.database.url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    bad = runner.invoke(
        app, ["emergency", "send", "--text", "Bão", "--units", "06040", "--until", "hôm qua"]
    )
    assert bad.exit_code == 2 and "--until = 'hôm qua'" in bad.output
    refused = runner.invoke(
        app, ["emergency", "send", "--text", "Bão", "--units", "06040", "--skip-opt-outs"]
    )
    assert refused.exit_code == 2 and "--by" in refused.output
    assert _count(engine, Emergency.__table__) == 0
    sent = runner.invoke(
        app,
        ["emergency", "send", "--text", "Lũ quét", "--units", "06040", "--channels", "web"],
    )
    assert sent.exit_code == 0, sent.output
    ref = find(engine, "1").reference
    assert f"đã phát tin khẩn cấp {ref}" in sent.output
    listed = runner.invoke(app, ["emergency", "list"])
    assert ref in listed.output and "đang phát" in listed.output
    gone = runner.invoke(app, ["emergency", "cancel", ref, "--note", "nước rút"])
    assert gone.exit_code == 0, gone.output
    shown = runner.invoke(app, ["emergency", "show", ref])
    assert "đã huỷ" in shown.output and "nước rút" in shown.output


def test_an_emergency_past_its_end_reads_as_ended(engine: Engine, places: Settings) -> None:
    ref = declare(
        engine,
        places,
        EmergencyRequest(text="Nắng nóng", units=["06040"], until=NOW + timedelta(hours=1)),
        NOW,
        "a",
    )
    assert progress(engine, ref, NOW).state == "active"
    assert progress(engine, ref, NOW + timedelta(hours=2)).state == "ended"
    with pytest.raises(InputError) as late:
        update(
            engine, places, ref, text="Nắng nóng gay gắt", now=NOW + timedelta(hours=2), actor="a"
        )
    assert late.value.field == "until"


def test_a_drill_texts_only_test_numbers_and_its_text_says_it_is_a_drill(
    engine: Engine, places: Settings, tmp_path: Path
) -> None:
    from tests.sms import e164, import_recipients, phone, sms_dispatcher, write_recipients
    from tests.twilio_server import TwilioServer

    rows = [{"name": f"CD {n}", "phone": phone(n), "unit": "06040", "groups": "xa"} for n in (1, 2)]
    import_recipients(engine, write_recipients(tmp_path / "ds.csv", rows))
    mark_test(engine, "sms", [e164(1)], True)
    clock = ManualClock(NOW)
    with TwilioServer() as gateway:
        dispatcher = sms_dispatcher(engine, places, gateway.url, clock)
        try:
            ref = declare(
                engine,
                places,
                EmergencyRequest(
                    text="Thử còi báo động lúc 8h", units=["06040"], channels=["sms"], drill=True
                ),
                NOW,
                "chu-tich",
            )
            dispatcher.tick()
        finally:
            dispatcher.stop()
    assert gateway.creates == [e164(1)]  # the test number only
    (message,) = gateway.messages.values()
    assert message.body.startswith("[DIỄN TẬP] ")
    assert "Thử còi báo động lúc 8h" in message.body
    assert progress(engine, ref).totals()["sms"].total == 1


NEWS_PLAN = """\
[plan]
number = "7/KH-UBND"
title = "Tuyên truyền tiêm chủng"
period_start = 2021-05-01
period_end = 2021-05-31
zone = "Asia/Ho_Chi_Minh"

[[content]]
key = "tiem-chung"
title = "Lịch tiêm chủng tháng 5"
body = "Trạm y tế xã tiêm chủng mở rộng sáng thứ Hai."
state = "approved"

[[schedules]]
name = "Tiêm chủng"
content = "tiem-chung"
channel = "web"
targets = { units = ["06040"] }
start = 2021-05-03T06:00:00
validity = "12h"
"""
ATOM = "{http://www.w3.org/2005/Atom}"


def _feed(url: str, unit: str) -> list[tuple[str, datetime]]:
    """The feed's entries as a reader gets them, in its order: (title, updated)."""
    import xml.etree.ElementTree as ET

    import httpx

    answer = httpx.get(f"{url}/bulletin.atom", params={"unit": unit}, timeout=30)
    assert answer.status_code == 200, answer.text
    root = ET.fromstring(answer.content)
    return [
        (
            entry.findtext(f"{ATOM}title") or "",
            datetime.fromisoformat(entry.findtext(f"{ATOM}updated") or ""),
        )
        for entry in root.iter(f"{ATOM}entry")
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_atom_feed_leads_with_the_emergency_while_it_lasts_and_not_after_cancel(
    engine: Engine, places: Settings, tmp_path: Path
) -> None:
    """A post published after the emergency comes below it in the feed while the emergency
    is pinned (first, and newest by its date, as readers sort), above it once cancelled."""
    from dispatcher.web.app import create_app
    from schedules.importer import import_plan_file
    from tests.conftest import ServerThread
    from tests.plans import write_plan

    import_plan_file(engine, places, write_plan(tmp_path, NEWS_PLAN), NOW)
    clock = ManualClock(NOW)
    request = EmergencyRequest(
        text="Lũ quét trên sông Kỳ Cùng: di chuyển lên chỗ cao.",
        units=["06040"],
        channels=["web"],
        title="Cảnh báo lũ quét",
        until=NOW + timedelta(hours=12),
    )
    ref = declare(engine, places, request, NOW, "chu-tich")
    _run(engine, places, clock)
    later = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)  # 06:00 on 3 May in Hà Nội: the news
    clock.set(later)
    _run(engine, places, clock)
    with ServerThread(create_app(engine, places, clock=clock)) as server:
        pinned = _feed(server.url, "06040")
        assert [title for title, _ in pinned] == ["Cảnh báo lũ quét", "Lịch tiêm chủng tháng 5"]
        assert pinned[0][1] >= pinned[1][1]  # readers that sort by date put it first too

        after = later + timedelta(minutes=5)
        clock.set(after)
        cancel(engine, places, ref, now=after, actor="chu-tich")
        unpinned = _feed(server.url, "06040")
    assert [title for title, _ in unpinned] == ["Lịch tiêm chủng tháng 5", "Cảnh báo lũ quét"]
    assert unpinned[1][1] < unpinned[0][1]  # back to its own date: older than the news


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_who_may_declare_but_not_skip_opt_outs_is_refused_naming_the_field(
    engine: Engine, places: Settings, console: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator asks, with a form posted by hand and on the command line, to text numbers
    that opted out: refused, saying which field and who may, and nothing is sent. An
    administrator may."""
    from typer.testing import CliRunner

    from dispatcher.cli.app import app
    from tests.console import make_user, post_form, signed_in

    asked = {"text": "Cháy rừng ở Thất Khê", "unit": "06040", "skip_opt_outs": "1"}
    with signed_in(console, "van-hanh-a") as a:
        refused = post_form(a, "/emergencies/new", "/emergencies/new", asked)
    assert refused.status_code == 403
    assert "skip_opt_outs = &#39;1&#39;" in refused.text
    assert "vai trò của van-hanh-a (vận hành (xã)) không cho phép" in refused.text
    assert "chỉ vai trò quản trị được chọn" in refused.text
    assert "Cháy rừng ở Thất Khê" in refused.text  # the form comes back as filled in

    monkeypatch.setenv("COSO_DATABASE__URL", places.database.url)
    monkeypatch.setenv("COLUMNS", "300")
    command = ["emergency", "send", "--text", "Cháy rừng", "--units", "06040", "--skip-opt-outs"]
    by_operator = CliRunner().invoke(app, [*command, "--by", "van-hanh-a"])
    assert by_operator.exit_code == 2
    said = " ".join(by_operator.output.split())
    assert (
        "--by = 'van-hanh-a': vai trò của van-hanh-a (vận hành (xã)) không cho phép"
        " --skip-opt-outs (gửi cả số đã từ chối nhận tin); chỉ vai trò quản trị được chọn"
    ) in said
    assert _count(engine, Emergency.__table__) == 0
    assert _count(engine, Schedule.__table__) == 0
    assert _count(engine, Delivery.__table__) == 0
    assert _count(engine, ActivityEntry.__table__) == 0

    make_user(engine, "quan-tri", ["administrator"], [])
    with signed_in(console, "quan-tri") as admin:
        sent = post_form(admin, "/emergencies/new", "/emergencies/new", asked)
    assert sent.status_code == 303
    assert find(engine, sent.headers["location"].removeprefix("/emergencies/")).skip_opt_outs
