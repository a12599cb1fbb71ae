"""Huidu LED controllers through their device HTTP API, against a local controller that
checks method, path, headers and the HMAC-MD5 signature exactly: items sent (drawn as an
image, or as text), `displayed` from what the controller plays, the brightness schedule,
an emergency and the programme back after it, a wrong key refused, a controller that
stopped answering shown offline with retries bounded, and a send repeated after a crash
that sends nothing twice."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, select, update

from channels.boards.devices import device_states
from channels.boards.service import BoardService
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.huidu_server import SDK_KEY, SDK_SECRET, Controller, HuiduServer
from tests.plans import write_plan

D = Delivery.__table__
LED = "C16L-D00-A000F"


def plan(port: int) -> str:
    return f"""\
[plan]
number = "18/KH-UBND"
title = "Bảng LED ở ngã tư"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "tb"
title = "Tiếp công dân"
body = "Xã Thất Khê tiếp công dân sáng thứ năm"
state = "approved"

[[content]]
key = "lu"
title = "Cảnh báo lũ"
body = "Lũ trên sông Kỳ Cùng: không qua ngầm, tràn"
state = "approved"

[[endpoints]]
channel = "boards"
address = "huidu:{LED}@127.0.0.1:{port}"
name = "Bảng LED ngã tư"
unit = "06040"

[[schedules]]
name = "Bảng LED sáng"
content = "tb"
channel = "boards"
targets = {{ endpoints = ["huidu:{LED}@127.0.0.1:{port}"] }}
start = 2021-05-03T07:00:00
validity = "8h"
options = {{ seconds = 12 }}

[[schedules]]
name = "Khẩn cấp: lũ"
content = "lu"
channel = "boards"
priority = "emergency"
targets = {{ endpoints = ["huidu:{LED}@127.0.0.1:{port}"] }}
start = 2021-05-03T09:00:00
validity = "30m"
"""


@pytest.fixture
def led() -> Any:
    with HuiduServer(Controller(LED)) as server:
        yield server


def _settings(settings: Settings, tmp_path: Path, **huidu: Any) -> Settings:
    settings.media.dir = str(tmp_path / "media")
    settings.channels["boards"] = {
        "huidu": {"sdk_key": SDK_KEY, "sdk_secret": SDK_SECRET, "timeout": "1s"} | huidu
    }
    return settings


def _run(engine: Engine, settings: Settings, clock: ManualClock, until: datetime) -> Dispatcher:
    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(until)
    dispatcher.fire()
    dispatcher.drain()
    dispatcher.stop()
    return dispatcher


def _imported(engine: Engine, settings: Settings, tmp_path: Path, port: int) -> ManualClock:
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))  # 06:00 on 3/5
    import_plan_file(engine, settings, write_plan(tmp_path, plan(port)), clock.now())
    return clock


def _service(engine: Engine, settings: Settings, clock: ManualClock) -> BoardService:
    from channels.boards.plugin import build
    from channels.registry import settings_of

    host = EngineHost(engine, settings, clock)
    return BoardService(host, build(host, settings_of(settings, "boards")))


def _states(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r.schedule_id, r.state) for r in conn.execute(select(D).order_by(D.c.id))]


def test_an_item_is_drawn_for_the_led_sent_signed_and_displayed_with_the_brightness_set(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    assert [s for _, s in _states(engine)] == ["sent"]
    assert [s.refused for s in led.seen] == [None] * len(led.seen)
    (program,) = led.controllers[LED].programs
    with engine.connect() as conn:
        delivery = conn.execute(select(D)).one()
    assert program["uuid"] == f"coso-{delivery.id}"
    assert program["playControl"] == {"duration": "00:00:12"}
    (area,) = program["area"]
    assert (area["width"], area["height"]) == (128, 64)  # from getDeviceProperty
    (item,) = area["item"]
    assert item["type"] == "image"  # the controller's fonts have no Vietnamese: coso draws
    name = item["file"].rsplit("/", 1)[-1]
    drawn = Path(settings.media.dir) / "boards" / name
    assert item["fileMd5"] == hashlib.md5(drawn.read_bytes()).hexdigest()
    assert item["fileSize"] == drawn.stat().st_size
    with Image.open(drawn) as image:
        assert image.size == (128, 64)
        assert image.convert("L").getextrema()[1] > 100  # something is written on it

    service = _service(engine, settings, clock)
    assert service.check_all() == 1
    assert [s for _, s in _states(engine)] == ["displayed"]
    lights = led.controllers[LED].luminance
    assert [(t["timeRange"], t["data"]) for t in lights] == [
        ("06:00:00~18:00:00", "100"),
        ("18:00:00~06:00:00", "40"),
    ]
    (state,) = device_states(engine, [delivery.endpoint_id]).values()
    assert state.online and state.last_seen == clock.now() and state.playing == "Tiếp công dân"
    assert len(led.calls("replace")) == 1 and len(led.calls("setScheduledTask")) == 1
    service.check_all()  # nothing changed: nothing sent again
    assert len(led.calls("replace")) == 1 and len(led.calls("setScheduledTask")) == 1
    A = ActivityEntry.__table__
    with engine.connect() as conn:
        events = [e for (e,) in conn.execute(select(A.c.event).where(A.c.channel == "boards"))]
    assert events.count("displayed") == 1


def test_text_goes_as_a_text_program_where_the_controller_renders_vietnamese(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path, render="text")
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    (item,) = led.controllers[LED].programs[0]["area"][0]["item"]
    assert item["type"] == "text" and item["string"] == "Xã Thất Khê tiếp công dân sáng thứ năm"
    assert item["font"]["name"] == "DejaVu Sans" and item["effect"]["hold"] == 12000


def test_an_emergency_takes_the_led_and_the_programme_comes_back_after_it(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    _run(engine, settings, clock, datetime(2021, 5, 3, 2, 0, 1, tzinfo=UTC))  # 09:00
    names = [p["name"] for p in led.controllers[LED].programs]
    assert names == ["Cảnh báo lũ"]
    service = _service(engine, settings, clock)
    service.check_all()  # the controller plays the emergency
    assert [s for _, s in _states(engine)] == ["sent", "displayed"]
    clock.set(datetime(2021, 5, 3, 2, 31, tzinfo=UTC))  # its 30 minutes are over
    service.check_all()
    assert [p["name"] for p in led.controllers[LED].programs] == ["Tiếp công dân"]
    assert [s for _, s in _states(engine)] == ["displayed", "displayed"]


def test_a_controller_showing_something_else_is_flagged_and_given_its_programme(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    led.controllers[LED].programs = [{"uuid": "quang-cao", "name": "Quảng cáo"}]
    service = _service(engine, settings, clock)
    service.check_all()
    assert [p["name"] for p in led.controllers[LED].programs] == ["Tiếp công dân"]
    flagged = [s for s in device_states(engine, [1, 2, 3]).values() if s.last_failure]
    assert len(flagged) == 1 and "không phải của coso" in (flagged[0].last_failure or "")


def test_a_wrong_key_is_refused_by_the_controller_and_the_delivery_fails_with_its_words(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path, sdk_secret="không-đúng")
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    assert {s.refused for s in led.seen} == {"sign error"}
    assert led.controllers[LED].programs == []
    with engine.connect() as conn:
        row = conn.execute(select(D)).one()
    assert row.state == "failed" and "sign error" in row.last_error


def test_a_controller_that_stops_answering_is_offline_and_retries_are_bounded(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path, tries=2)
    clock = _imported(engine, settings, tmp_path, led.port)
    led.slow, led.slow_for = 2, 1.5  # longer than the 1 s timeout, twice
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    assert len(led.seen) == 2  # two tries, then the delivery waits for its next attempt
    assert [s for _, s in _states(engine)] == ["retry_wait"]
    with engine.connect() as conn:
        endpoint = conn.execute(select(D.c.endpoint_id)).scalar_one()
    (state,) = device_states(engine, [endpoint]).values()
    assert not state.online and "no answer" in (state.last_failure or "")

    led.errors = 5
    service = _service(engine, settings, clock)
    assert service.check_all() == 0  # 500s: still offline
    assert not device_states(engine, [endpoint])[endpoint].online
    assert led.errors == 3  # each request tried twice, no more

    clock.advance(timedelta(minutes=5))
    led.errors = 0
    _run(engine, settings, clock, clock.now() + timedelta(seconds=1))
    assert [s for _, s in _states(engine)] == ["sent"]
    assert device_states(engine, [endpoint])[endpoint].online


def test_a_send_repeated_after_a_crash_does_not_send_twice(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    assert len(led.calls("replace")) == 1
    # The controller had it, but the record of the send was lost: the delivery is sent again.
    with engine.begin() as conn:
        conn.execute(update(D).values(state="sending", claimed_by="a-process-that-died"))
    dispatcher = Dispatcher(engine, settings, clock)
    assert dispatcher.recover() == 1  # as a restart does: back to the queue (resend-safe)
    dispatcher.drain()
    dispatcher.stop()
    assert [s for _, s in _states(engine)] == ["sent"]
    assert len(led.calls("replace")) == 1
    assert len(led.controllers[LED].programs) == 1
