"""Huidu LED controllers through their device HTTP API, against a local controller that
checks method, path, headers and the HMAC-MD5 signature exactly: items sent (drawn as an
image, or as text), a long text drawn as the pages of one program, `displayed` from what
the controller plays, the brightness schedule, an emergency and the programme back after
it, a wrong key refused, a controller that stopped answering or is switched off shown
offline (in `coso devices` and on the console's devices page) with retries bounded, and a
send repeated after a crash that sends nothing twice."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageFont
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from channels.boards.devices import device_states
from channels.boards.images import FONT, line_boxes, page_image, smallest_size, text_pages
from channels.boards.service import BoardService
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.console import make_user, signed_in
from tests.huidu_server import SDK_KEY, SDK_SECRET, Controller, HuiduServer
from tests.plans import write_plan

D = Delivery.__table__
LED = "C16L-D00-A000F"
SHORT = "Xã Thất Khê tiếp công dân sáng thứ năm"
LONG = (
    "Ủy ban nhân dân xã Thất Khê thông báo: từ ngày mười lăm tháng sáu, người dân đến làm thủ "
    "tục hành chính tại bộ phận một cửa mang theo căn cước công dân gắn chip và sổ hộ khẩu cũ "
    "để đối chiếu; các việc khai sinh, kết hôn, chứng thực bản sao được giải quyết trong "
    "ngày. Đề nghị bà con đến đúng giờ, giữ trật tự, đeo khẩu trang nơi đông người."
)


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
body = "{SHORT}"
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


def _imported(
    engine: Engine, settings: Settings, tmp_path: Path, port: int, text: str = SHORT
) -> ManualClock:
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))  # 06:00 on 3/5
    written = write_plan(tmp_path, plan(port).replace(SHORT, text))
    import_plan_file(engine, settings, written, clock.now())
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
    assert state.online and state.last_seen == clock.now()
    assert state.playing == "Tiếp công dân · độ sáng 100%"  # 07:00 in Hà Nội: the day's
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
    assert not state.online and "không trả lời" in (state.last_failure or "")

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


def test_a_long_text_goes_to_the_led_as_pages_of_one_program_every_word_in_order(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port, text=LONG)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    assert [s for _, s in _states(engine)] == ["sent"]
    (program,) = led.controllers[LED].programs  # one item, one program
    (area,) = program["area"]
    assert (area["width"], area["height"]) == (128, 64)

    # The text is cut into pages at a size read from across the street: a quarter of the
    # board's 64 pixels, not shrunk until it fits.
    pages = text_pages(LONG, 128, 64)
    assert len(pages) >= 3
    assert smallest_size(64) == 16 and {p.size for p in pages} == {16}
    assert [word for page in pages for word in page.text.split()] == LONG.split()
    for page in pages:  # nothing cut off at the board's edges
        font = ImageFont.truetype(str(FONT), page.size)
        for line, (left, top, right, bottom) in zip(
            page.lines, line_boxes(page, 128, 64), strict=True
        ):
            x0, _, x1, _ = font.getbbox(line)
            assert x1 - x0 <= 128 and left >= 0 and right <= 128, line
            assert top >= 0 and bottom <= 64, line

    # Each page is an image of the program's area, in order, shown one after another.
    items = area["item"]
    assert [i["type"] for i in items] == ["image"] * len(pages)
    folder = Path(settings.media.dir) / "boards"
    for item, page in zip(items, pages, strict=True):
        drawn = (folder / item["file"].rsplit("/", 1)[-1]).read_bytes()
        assert drawn == page_image(page, 128, 64)
        assert item["fileMd5"] == hashlib.md5(drawn).hexdigest()
        assert item["fileSize"] == len(drawn)
    holds = {i["effect"]["hold"] for i in items}
    assert holds == {max(3, -(-12 // len(pages))) * 1000}  # 12 s shared, 3 s a page at least
    total = holds.pop() // 1000 * len(pages)
    assert program["playControl"]["duration"] == f"00:{total // 60:02d}:{total % 60:02d}"

    service = _service(engine, settings, clock)
    assert service.check_all() == 1
    assert [s for _, s in _states(engine)] == ["displayed"]


def _coso(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> Any:
    """`coso …` on this test's database, as a user types it; its output."""
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.setenv("COSO_MEDIA__DIR", str(tmp_path / "media"))
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(app, list(args))
        assert done.exit_code == 0, done.output
        return done.output

    return run


def _line(output: str, address: str) -> str:
    (line,) = [line for line in output.splitlines() if address in line]
    return line


def test_a_controller_switched_off_is_offline_in_coso_devices_and_on_the_console(
    engine: Engine,
    settings: Settings,
    db_url: str,
    tmp_path: Path,
    led: HuiduServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(settings, tmp_path, tries=2)
    clock = _imported(engine, settings, tmp_path, led.port)
    _run(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))  # 07:00
    service = _service(engine, settings, clock)
    assert service.check_all() == 1
    coso = _coso(monkeypatch, db_url, tmp_path)
    address = f"huidu:{LED}@127.0.0.1:{led.port}"
    up = _line(coso("devices", "--channel", "boards"), address)
    assert "đang kết nối" in up and "03/05/2021 07:00" in up  # online, last seen
    assert "Tiếp công dân · độ sáng 100%" in up  # what it shows, its brightness by day

    # The controller is switched off: its port refuses every connection.
    led.stop()
    tried: list[str] = []
    connect = httpx.HTTPTransport.handle_request

    def counted(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.port == led.port:
            tried.append(request.url.path)
        return connect(transport, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", counted)
    _run(engine, settings, clock, datetime(2021, 5, 3, 2, 0, 1, tzinfo=UTC))  # 09:00: the flood
    assert [s for _, s in _states(engine)] == ["displayed", "retry_wait"]  # transient
    assert len(tried) == 2  # `tries` connections, then the delivery waits its turn
    for _ in range(5):  # the dispatcher's retries: max_attempts (4) in all, then it gives up
        _run(engine, settings, clock, clock.now() + timedelta(minutes=3))
    assert [s for _, s in _states(engine)] == ["displayed", "failed"]
    assert len(tried) == 4 * 2
    with engine.connect() as conn:
        error = conn.execute(select(D.c.last_error).where(D.c.state == "failed")).scalar_one()
    assert "gave up after 4 attempts" in error and "không kết nối được bộ điều khiển" in error
    assert service.check_all() == 0 and len(tried) == 4 * 2 + 2  # a check round: offline too

    (state,) = device_states(engine, _endpoints(engine)).values()
    assert not state.online
    assert state.last_seen == datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC)  # its last answer
    down = _line(coso("devices", "--channel", "boards"), address)
    assert "mất kết nối" in down and "03/05/2021 07:00" in down
    assert "độ sáng 100%" in down and "không kết nối được bộ điều khiển" in down

    # The console's "Thiết bị" page says the same to the commune's operator.
    make_user(engine, "van-hanh", ["operator"], ["06040"])
    with (
        ServerThread(create_app(engine, settings)) as server,
        signed_in(server.url, "van-hanh") as client,
    ):
        page = client.get("/devices?unit=06040")
    assert page.status_code == 200 and "Thiết bị" in page.text
    (row,) = [r for r in page.text.split("<tr>") if "Bảng LED ngã tư" in r]
    text = re.sub(r"<[^>]+>", " ", row)
    assert "mất kết nối" in text and "03/05/2021 07:00" in text
    assert "Tiếp công dân · độ sáng 100%" in text
    assert "không kết nối được bộ điều khiển" in text


def _endpoints(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(D.c.endpoint_id).distinct()).scalars())


def test_an_item_cued_ahead_of_its_slot_reaches_the_led_only_at_the_slot(
    engine: Engine, settings: Settings, tmp_path: Path, led: HuiduServer
) -> None:
    """Board items go out ahead of their slot (the boards' cue, 10 s by default): a screen
    puts them on at their time itself, but a controller shows what it is given at once, so
    its item waits in coso, without spending an attempt, and goes at the slot."""
    import functools

    settings = _settings(settings, tmp_path)
    clock = _imported(engine, settings, tmp_path, led.port)
    slot = datetime(2021, 5, 3, 0, 0, tzinfo=UTC)  # 07:00 in Hà Nội
    clock.set(slot - timedelta(minutes=10))  # within the timer's horizon (15 min)
    dispatcher = Dispatcher(engine, settings, clock)
    timer = dispatcher._new_timer()
    timer._scheduler.start = functools.partial(timer._scheduler.start, paused=True)
    try:
        timer.start()
        assert f"cue:{slot.isoformat()}" in timer.pending_jobs()
        clock.set(slot - timedelta(seconds=10))
        timer._cue_slot(slot)  # the occurrence and its delivery, now
        dispatcher.drain()
        assert _states(engine) == [(1, "retry_wait")]
        assert led.controllers[LED].programs == []
        with engine.connect() as conn:
            delivery = conn.execute(select(D)).one()
            held = conn.execute(
                select(ActivityEntry.__table__.c.detail).where(
                    ActivityEntry.__table__.c.event == "held"
                )
            ).scalar_one()
        assert delivery.attempts == 0
        assert delivery.next_attempt_at.replace(tzinfo=UTC) == slot
        assert "đúng giờ phát" in held
        clock.set(slot - timedelta(seconds=1))
        dispatcher.drain()
        assert led.controllers[LED].programs == []
        clock.set(slot)
        timer._fire_slot(slot)  # nothing left to fire: the cue did
        dispatcher.drain()
        assert _states(engine) == [(1, "sent")]
        (program,) = led.controllers[LED].programs
        assert program["uuid"] == f"coso-{delivery.id}"
    finally:
        timer.stop()
        dispatcher.stop()
