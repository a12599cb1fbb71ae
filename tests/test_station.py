"""Commune radio stations that no computer controls: each delivery is a task for the
commune's operator, who says it was played (or could not be) in the console, on the
command line or by SMS; a task nobody answers becomes `unconfirmed` at the end of its
validity; each operator gets the day's list with codes by SMS once a day."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from channels.station.confirmations import add_note, confirm, could_not_play
from channels.station.service import StationService
from channels.station.tasks import station_tasks
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputError
from coso.users import User
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.helpers import SLOT
from tests.plans import write_plan
from tests.sms import e164, sms_settings
from tests.twilio_server import TwilioServer, post_callback

STATION_PLAN = """\
[plan]
number = "21/KH-UBND"
title = "Tuyên truyền CCHC trên đài truyền thanh xã"
period_start = 2021-05-01
period_end = 2021-12-31
zone = "Asia/Ho_Chi_Minh"

[[content]]
key = "cchc"
kind = "text"
title = "Thủ tục mới"
body = "Kính thưa bà con {{ unit.name }}: từ 01/6 hồ sơ hộ tịch nộp trực tuyến."
state = "approved"

[[endpoints]]
channel = "station"
address = "station:06040"
name = "Đài xã 06040"
unit = "06040"

[[endpoints]]
channel = "station"
address = "station:06046-fm"
unit = "06046"

[[endpoints]]
channel = "web"
address = "bulletin:06040"
unit = "06040"

[[schedules]]
name = "Bản tin sáng trên đài xã"
content = "cchc"
channel = "station"
targets = { units = ["06040", "06046"] }
start = 2021-05-03T06:00:00
rrule = "FREQ=DAILY"
until = 2021-12-31
validity = "2h"

[[schedules]]
name = "Bản tin trên trang xã"
content = "cchc"
channel = "web"
targets = { endpoints = ["bulletin:06040"] }
start = 2021-05-03T06:00:00
validity = "2h"
"""

BEFORE = datetime(2021, 5, 2, 12, 0, tzinfo=UTC)  # 19:00 on 02/05 in Hồ Chí Minh
MORNING = date(2021, 5, 3)


def add_user(engine: Engine, login: str, phone: str | None, units: list[str], **more: Any) -> None:
    row = {
        "login": login,
        "name": login.upper(),
        "password_hash": "-",
        "roles": ["operator"],
        "unit_codes": units,
        "organisation_id": None,
        "phone": phone,
        "disabled": False,
        "session_epoch": 0,
        "must_change_password": False,
        "created_at": BEFORE,
        "updated_at": BEFORE,
        **more,
    }
    with engine.begin() as conn:
        conn.execute(insert(User.__table__), row)


@pytest.fixture
def station(engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """The plan imported at 19:00 the evening before its first slot; operators of 06040
    (op-a) and 06046 (op-b)."""
    clock = ManualClock(BEFORE)
    import_plan_file(engine, settings, write_plan(tmp_path, STATION_PLAN), clock.now())
    add_user(engine, "op-a", e164(1), ["06040"])
    add_user(engine, "op-b", e164(2), ["06046"])

    class Rig:
        pass

    rig = Rig()
    rig.clock, rig.engine, rig.settings = clock, engine, settings  # type: ignore[attr-defined]
    rig.host = EngineHost(engine, settings, clock)  # type: ignore[attr-defined]
    yield rig


def fire(rig: Any, at: datetime) -> None:
    rig.clock.set(at)
    dispatcher = Dispatcher(rig.engine, rig.settings, rig.clock)
    try:
        dispatcher.tick()
    finally:
        for sender in dispatcher.senders.values():
            sender.close()


def deliveries(engine: Engine, channel: str = "station") -> dict[str, Any]:
    """unit → its delivery on `channel`."""
    D = Delivery.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(D).where(D.c.channel == channel)).all()
    return {r.unit_code: r for r in rows}


def entries(engine: Engine, delivery_id: int) -> list[Any]:
    A = ActivityEntry.__table__
    with engine.connect() as conn:
        return list(
            conn.execute(select(A).where(A.c.delivery_id == delivery_id).order_by(A.c.id)).all()
        )


def test_station_delivery_is_a_task_the_operator_confirms_with_the_time_it_played(
    station: Any,
) -> None:
    host = station.host
    (coming,) = station_tasks(host, "06040", MORNING)
    assert (coming.delivery_id, coming.status, coming.station) == (None, "upcoming", "Đài xã 06040")
    assert coming.scheduled_for == SLOT and coming.expires_at == SLOT + timedelta(hours=2)
    assert coming.text.startswith("Kính thưa bà con Xã ") and "trực tuyến" in coming.text

    fire(station, SLOT + timedelta(seconds=1))
    (task,) = station_tasks(host, "06040", MORNING)
    mine = deliveries(station.engine)["06040"]
    assert (task.delivery_id, task.state, task.status, task.can_confirm) == (
        mine.id,
        "sent",
        "due",
        True,
    )
    assert task.text == coming.text and task.code and len(task.code) == 4
    handed = entries(station.engine, mine.id)[-1]
    assert (handed.event, handed.state) == ("awaiting_confirmation", "sent")
    assert task.code in handed.detail

    station.clock.set(SLOT + timedelta(minutes=40))
    assert station_tasks(host, "06040", MORNING)[0].status == "late"
    with pytest.raises(InputError, match=r"played_at = '07:00 03/05/2021'.*tương lai"):
        confirm(host, mine.id, "op-a", SLOT + timedelta(hours=1))
    with pytest.raises(InputError, match=r"played_at = '05:00 03/05/2021'.*sớm hơn giờ phát"):
        confirm(host, mine.id, "op-a", SLOT - timedelta(hours=1))
    assert deliveries(station.engine)["06040"].state == "sent"  # refused: nothing changed

    played = SLOT + timedelta(minutes=32)
    done = confirm(host, mine.id, "op-a", played)
    assert (done.state, done.at) == ("confirmed", played)
    last = entries(station.engine, mine.id)[-1]
    assert (last.event, last.state, last.actor, last.at) == (
        "confirmed",
        "confirmed",
        "op-a",
        played,
    )
    assert "late by 32m00s" in last.detail  # past channels.station.late_after (15m)
    assert station_tasks(host, "06040", MORNING)[0].status == "done"
    with pytest.raises(InputError, match="đã được ghi nhận là 'đã phát"):
        confirm(host, mine.id, "op-a")
    with pytest.raises(InputError, match=r"delivery = \d+: đã được ghi nhận"):
        could_not_play(host, mine.id, "op-a", "mat_dien")
    assert len(entries(station.engine, mine.id)) == 3  # queued, awaiting, confirmed


def test_only_a_station_delivery_is_confirmed_but_any_delivery_takes_a_note(
    station: Any,
) -> None:
    host = station.host
    fire(station, SLOT + timedelta(seconds=1))
    post = deliveries(station.engine, "web")["06040"]
    assert post.state == "delivered"
    with pytest.raises(InputError, match="kênh web, không phải việc của đài truyền thanh"):
        confirm(host, post.id, "op-a")
    with pytest.raises(InputError, match="delivery = 999999: không có lần gửi này"):
        confirm(host, 999999, "op-a")
    with pytest.raises(InputError, match="text = '   ': ghi chú không được để trống"):
        add_note(host, post.id, "op-a", "   ")

    add_note(host, post.id, "op-a", "Bản tin đã được đọc lại trên loa lúc 18:00.")
    note = entries(station.engine, post.id)[-1]
    assert (note.event, note.state, note.actor, note.channel, note.unit_code) == (
        "note",
        None,
        "op-a",
        "web",
        "06040",
    )
    assert note.detail == "Bản tin đã được đọc lại trên loa lúc 18:00."
    assert deliveries(station.engine, "web")["06040"].state == "delivered"


def test_could_not_play_fails_the_task_with_the_reason(station: Any) -> None:
    host = station.host
    fire(station, SLOT + timedelta(seconds=1))
    mine = deliveries(station.engine)["06046"]
    with pytest.raises(InputError, match="reason = 'bão': không có lý do này"):
        could_not_play(host, mine.id, "op-b", "bão")
    with pytest.raises(InputError, match="note = '': lý do 'khác' cần ghi rõ lý do"):
        could_not_play(host, mine.id, "op-b", "khac")
    could_not_play(host, mine.id, "op-b", "Mất điện", "cả xã mất điện từ 5 giờ")
    failed = deliveries(station.engine)["06046"]
    assert failed.state == "failed"
    assert failed.last_error == "Mất điện: cả xã mất điện từ 5 giờ"
    last = entries(station.engine, mine.id)[-1]
    assert (last.event, last.state, last.actor) == ("not_played", "failed", "op-b")
    assert "lý do: mat_dien" in last.detail and "cả xã mất điện" in last.detail
    (task,) = station_tasks(host, "06046", MORNING)
    assert (task.status, task.error) == ("done", "Mất điện: cả xã mất điện từ 5 giờ")


def test_a_task_nobody_confirms_becomes_unconfirmed_at_the_end_of_its_validity(
    station: Any,
) -> None:
    host = station.host
    fire(station, SLOT + timedelta(seconds=1))
    upkeep = StationService(host)
    assert upkeep.upkeep(SLOT + timedelta(hours=1, minutes=59)).unconfirmed == 0
    station.clock.set(SLOT + timedelta(hours=2, seconds=5))
    assert upkeep.upkeep().unconfirmed == 2
    assert {u: d.state for u, d in deliveries(station.engine).items()} == {
        "06040": "unconfirmed",
        "06046": "unconfirmed",
    }
    mine = deliveries(station.engine)["06040"]
    lapsed = entries(station.engine, mine.id)[-1]
    assert (lapsed.event, lapsed.state, lapsed.actor) == ("unconfirmed", "unconfirmed", "coso")
    assert "late by" not in lapsed.detail and "hết hiệu lực" in lapsed.detail
    assert station_tasks(host, "06040", MORNING)[0].status == "late"  # may still be answered

    # A late word from the operator is taken within channels.station.late_confirmation …
    confirm(host, mine.id, "op-a", SLOT + timedelta(minutes=5))
    assert deliveries(station.engine)["06040"].state == "confirmed"
    assert [e.state for e in entries(station.engine, mine.id)][-2:] == [
        "unconfirmed",
        "confirmed",
    ]
    # … and refused after it.
    station.clock.set(SLOT + timedelta(hours=26, seconds=1))
    other = deliveries(station.engine)["06046"]
    with pytest.raises(InputError, match="đã quá hạn xác nhận muộn"):
        confirm(host, other.id, "op-b", SLOT + timedelta(minutes=5))
    assert deliveries(station.engine)["06046"].state == "unconfirmed"


def _reply(url: str, phone: str, body: str) -> str:
    answer = post_callback(f"{url}/sms/inbound", {"From": phone, "Body": body})
    assert answer.status_code == 200, answer.text
    found = re.search(r"<Message>(.*)</Message>", answer.text, re.DOTALL)
    return found.group(1) if found else ""


def test_operators_confirm_by_sms_and_wrong_codes_or_phones_change_nothing(
    station: Any, caplog: pytest.LogCaptureFixture
) -> None:
    host, engine = station.host, station.engine
    fire(station, SLOT + timedelta(seconds=1))
    codes = {unit: station_tasks(host, unit, MORNING)[0].code for unit in ("06040", "06046")}
    with TwilioServer() as gateway:
        sms_settings(station.settings, gateway.url, status_callbacks=False)
        with ServerThread(create_app(engine, station.settings, station.clock)) as web:
            station.settings.server.public_url = web.url
            station.clock.set(SLOT + timedelta(minutes=20))
            caplog.set_level(logging.WARNING)
            wrong = next(str(n) for n in range(1000, 10000) if str(n) not in codes.values())
            said = _reply(web.url, e164(1), f"XN {wrong}")
            assert f"Ma {wrong} khong dung hoac da het han" in said
            said = _reply(web.url, e164(2), f"kp {codes['06040']} mat dien")
            assert "khong phai cua nguoi truc dai" in said
            assert {d.state for d in deliveries(engine).values()} == {"sent"}
            refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(wrong in m and "no open task" in m for m in refusals)
            assert any("not the phone of an operator of unit 06040" in m for m in refusals)

            said = _reply(web.url, e164(1), f"Xn {codes['06040']}")
            assert said.startswith("Da ghi nhan: DA PHAT")
            said = _reply(web.url, e164(2), f"KP {codes['06046']} Mất điện")
            assert said.startswith("Da ghi nhan: KHONG PHAT DUOC") and "Mat dien" in said
            again = _reply(web.url, e164(1), f"XN {codes['06040']}")
            assert again.startswith("Chua ghi nhan") and "da duoc ghi nhan" in again

            forged = post_callback(
                f"{web.url}/sms/inbound", {"From": e164(1), "Body": "XN 1234"}, token="f" * 32
            )
            assert forged.status_code == 403
    confirmed, failed = deliveries(engine)["06040"], deliveries(engine)["06046"]
    assert (confirmed.state, failed.state) == ("confirmed", "failed")
    assert failed.last_error == "Mất điện"
    by_sms = entries(engine, confirmed.id)[-1]
    assert (by_sms.actor, by_sms.at) == ("op-a", SLOT + timedelta(minutes=20))
    assert "qua SMS" in by_sms.detail
    assert entries(engine, failed.id)[-1].actor == "op-b"


def test_each_operator_gets_the_list_of_the_day_once(station: Any) -> None:
    host, engine = station.host, station.engine
    add_user(engine, "op-c", e164(3), ["20"])  # the province: both communes
    add_user(engine, "op-d", None, ["06040"])  # no phone: nothing to text
    add_user(engine, "off", e164(4), ["06040"], disabled=True)
    add_user(engine, "viewer", e164(5), ["06040"], roles=["viewer"])
    with TwilioServer() as gateway:
        sms_settings(station.settings, gateway.url, status_callbacks=False)
        # 04:59 on 03/05: not yet (channels.station.digest_at = 05:00)
        station.clock.set(SLOT - timedelta(minutes=61))
        assert StationService(host).upkeep().digests == {}
        station.clock.set(SLOT - timedelta(minutes=60))
        first = StationService(host).upkeep().digests
        assert first == {"op-a": "sent", "op-b": "sent", "op-c": "sent"}
        # Later rounds, and a restarted service, text nobody again that day.
        station.clock.set(SLOT - timedelta(minutes=30))
        assert StationService(host).upkeep().digests == {}
        texts = {n: [m.body for m in gateway.to(e164(n))] for n in range(1, 6)}
    (for_a,) = texts[1]
    (for_c,) = texts[3]
    assert texts[4] == texts[5] == []
    assert for_a.startswith("Lich dai truyen thanh 03/05/2021:\n06:00 Thu tuc moi [")
    assert "XN <ma>" in for_a and "KP <ma> <ly do>" in for_a
    assert for_c.count("06:00 Thu tuc moi") == 2  # one per station, each named
    assert "Dai xa 06040" in for_c and "station:06046-fm" in for_c
    code = re.search(r"\[(\d{4})\]", for_a).group(1)  # type: ignore[union-attr]

    # The code in the list is the task's code once it fires.
    fire(station, SLOT + timedelta(seconds=1))
    (task,) = station_tasks(host, "06040", MORNING)
    assert task.code == code
    assert code in for_c


def test_command_line_lists_confirms_and_fails_tasks(
    station: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatcher.cli.app import app

    monkeypatch.setenv("COSO_DATABASE__URL", station.settings.database.url)
    monkeypatch.setenv("COLUMNS", "200")
    fire(station, SLOT + timedelta(seconds=1))
    mine, theirs = deliveries(station.engine)["06040"], deliveries(station.engine)["06046"]
    runner = CliRunner()
    listed = runner.invoke(app, ["station", "tasks", "06040", "--day", "03/05/2021", "--text"])
    assert listed.exit_code == 0, listed.output
    assert "Thủ tục mới" in listed.output and "hồ sơ hộ tịch" in listed.output
    unknown = runner.invoke(app, ["station", "tasks", "99999"])
    assert unknown.exit_code == 2 and "unit = '99999'" in unknown.output
    bad = runner.invoke(app, ["station", "confirm", str(mine.id), "--by", "nobody"])
    assert bad.exit_code == 2 and "--by = 'nobody'" in bad.output
    ok = runner.invoke(
        app, ["station", "confirm", str(mine.id), "--by", "op-a", "--at", "03/05/2021 06:10"]
    )
    assert ok.exit_code == 0, ok.output
    failed = runner.invoke(
        app,
        ["station", "fail", str(theirs.id), "--by", "op-b", "--reason", "hong_thiet_bi",
         "--note", "hỏng bộ khuếch đại"],
    )  # fmt: skip
    assert failed.exit_code == 0, failed.output
    now = {u: (d.state, d.last_error) for u, d in deliveries(station.engine).items()}
    assert now == {
        "06040": ("confirmed", None),
        "06046": ("failed", "Hỏng thiết bị: hỏng bộ khuếch đại"),
    }
    assert entries(station.engine, mine.id)[-1].at == SLOT + timedelta(minutes=10)
