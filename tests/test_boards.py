"""The boards channel without a browser: items on boards' programmes (priority first, then
the schedules' order), display reports as `displayed` outcomes, pairing, text laid out in
pages for an LED board, and bad input refused with a clear message."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from channels.boards import pairing
from channels.boards.displays import record_displays
from channels.boards.programme import end_items, programmes
from channels.boards.tables import BoardDisplay
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputError, InputErrors
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.plans import write_plan

PLAN = """\
[plan]
number = "17/KH-UBND"
title = "Bảng tin điện tử: cải cách hành chính"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "tb"
title = "Lịch tiếp công dân"
body = "Ủy ban nhân dân {{ unit.name }} tiếp công dân sáng thứ năm hằng tuần."
state = "approved"

[[content]]
key = "bao"
title = "Cảnh báo bão số 3"
body = "Bão số 3 đổ bộ: người dân ở trong nhà, tránh xa bờ sông."
state = "approved"

[[content]]
key = "rong"
title = "Không chữ"
body = "   "
state = "approved"

[[endpoints]]
channel = "boards"
address = "screen:cho-that-khe"
name = "Chợ Thất Khê"
unit = "06040"

[[endpoints]]
channel = "boards"
address = "screen:ubnd-06046"
name = "UBND xã"
unit = "06046"

[[schedules]]
name = "Bảng tin sáng"
content = "tb"
channel = "boards"
targets = { endpoints = ["screen:cho-that-khe", "screen:ubnd-06046"] }
start = 2021-05-03T07:00:00
validity = "8h"
options = { seconds = 20 }

[[schedules]]
name = "Khẩn cấp: bão"
content = "bao"
channel = "boards"
priority = "emergency"
targets = { endpoints = ["screen:cho-that-khe", "screen:ubnd-06046"] }
start = 2021-05-03T07:30:00
validity = "2h"
"""
EMPTY_ITEM = """
[[schedules]]
name = "Mục rỗng"
content = "rong"
channel = "boards"
targets = { endpoints = ["screen:cho-that-khe"] }
start = 2021-05-03T07:00:00
validity = "2h"
"""


@pytest.fixture
def boards_settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.media.dir = str(tmp_path / "media")
    return settings


def _fire(engine: Engine, settings: Settings, clock: ManualClock, until: datetime) -> None:
    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(until)
    dispatcher.fire()
    dispatcher.drain()
    dispatcher.stop()


def _states(engine: Engine) -> dict[tuple[int, int], str]:
    D = Delivery.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(D.c.schedule_id, D.c.endpoint_id, D.c.state)).all()
    return {(r.schedule_id, r.endpoint_id): r.state for r in rows}


def _board(engine: Engine, name: str):  # type: ignore[no-untyped-def]
    return pairing.screen(engine, name)


def _imported(engine: Engine, settings: Settings, tmp_path: Path) -> ManualClock:
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))  # 06:00 on 3/5 in Hà Nội
    import_plan_file(engine, settings, write_plan(tmp_path, PLAN), clock.now())
    return clock


def test_items_go_on_both_boards_and_reports_make_them_displayed(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    settings = boards_settings
    clock = _imported(engine, settings, tmp_path)
    _fire(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))  # 07:00:01
    market, office = _board(engine, "cho-that-khe"), _board(engine, "ubnd-06046")
    with engine.connect() as conn:
        shown = programmes(conn, [market.id, office.id], clock.now(), emergencies_alone=False)
    assert [i["title"] for i in shown[market.id]] == ["Lịch tiếp công dân"]
    assert "Thất Khê" in shown[market.id][0]["text"]
    assert shown[market.id][0]["seconds"] == 20
    item = shown[market.id][0]
    D = Delivery.__table__

    host = EngineHost(engine, settings, clock)
    started = clock.now() + timedelta(seconds=1)
    upload = record_displays(
        host,
        market,
        [
            {
                "id": "r1",
                "delivery_id": item["id"],
                "started_at": started.isoformat(),
                "seconds": 20,
            },
            {
                "id": "r1",
                "delivery_id": item["id"],
                "started_at": started.isoformat(),
                "seconds": 20,
            },
        ],
        clock.now() + timedelta(seconds=30),
    )
    assert upload.accepted == ["r1", "r1"] and upload.refused == []
    with engine.connect() as conn:
        delivery = conn.execute(select(D).where(D.c.id == item["id"])).one()
        displays = conn.execute(select(BoardDisplay.__table__)).all()
        A = ActivityEntry.__table__
        log = conn.execute(
            select(A.c.event, A.c.at, A.c.detail).where(A.c.delivery_id == item["id"])
        ).all()
    assert delivery.state == "displayed"
    assert len(displays) == 1 and displays[0].seconds == 20
    assert [e.event for e in log].count("displayed") == 1
    entry = next(e for e in log if e.event == "displayed")
    assert entry.at.replace(tzinfo=UTC) == started and "20 giây" in entry.detail


def test_a_report_for_another_boards_delivery_is_refused_and_changes_nothing(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    settings = boards_settings
    clock = _imported(engine, settings, tmp_path)
    _fire(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    market, office = _board(engine, "cho-that-khe"), _board(engine, "ubnd-06046")
    with engine.connect() as conn:
        theirs = programmes(conn, [office.id], clock.now())[office.id][0]["id"]
    host = EngineHost(engine, settings, clock)
    upload = record_displays(
        host,
        market,
        [
            {"id": "x", "delivery_id": theirs, "started_at": clock.now().isoformat(), "seconds": 5},
            {"id": "y", "delivery_id": "7", "started_at": "hôm qua", "seconds": 5},
        ],
        clock.now(),
    )
    assert upload.accepted == []
    reasons = {r["id"]: r["reason"] for r in upload.refused}
    assert "không phải của bảng screen:cho-that-khe" in reasons["x"]
    assert reasons["y"].startswith("delivery_id")
    D = Delivery.__table__
    with engine.connect() as conn:
        assert conn.scalar(select(D.c.state).where(D.c.id == theirs)) == "sent"
        assert conn.execute(select(BoardDisplay.__table__)).all() == []


def test_an_emergency_shows_alone_until_it_ends_then_the_programme_resumes(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    settings = boards_settings
    clock = _imported(engine, settings, tmp_path)
    _fire(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    _fire(engine, settings, clock, datetime(2021, 5, 3, 0, 30, 1, tzinfo=UTC))  # 07:30
    market = _board(engine, "cho-that-khe")
    with engine.connect() as conn:
        now = programmes(conn, [market.id], clock.now())[market.id]
        every = programmes(conn, [market.id], clock.now(), emergencies_alone=False)[market.id]
    assert [(i["priority"], i["title"]) for i in now] == [("emergency", "Cảnh báo bão số 3")]
    assert [i["priority"] for i in every] == ["emergency", "normal"]  # a screen has both
    schedule = next(i for i in every if i["priority"] == "emergency")
    host = EngineHost(engine, settings, clock)
    with engine.connect() as conn:
        sid = conn.scalar(
            select(Delivery.__table__.c.schedule_id).where(
                Delivery.__table__.c.id == schedule["id"]
            )
        )
    assert end_items(host, sid, "admin", clock.now()) == 2
    with engine.connect() as conn:
        after = programmes(conn, [market.id], clock.now())[market.id]
    assert [i["title"] for i in after] == ["Lịch tiếp công dân"]


LOOP = """\
[plan]
number = "19/KH-UBND"
title = "Bảng tin chợ: nhiều mục"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "dien"
title = "Lịch cắt điện"
body = "Thứ bảy cắt điện từ 7 giờ đến 11 giờ."
state = "approved"

[[content]]
key = "tiem"
title = "Tiêm chủng mở rộng"
body = "Trạm y tế tiêm vắc xin cho trẻ vào ngày 25."
state = "approved"

[[content]]
key = "hop"
title = "Họp dân khu phố 3"
body = "Mời đại diện các hộ họp lúc 19 giờ."
state = "approved"

[[endpoints]]
channel = "boards"
address = "screen:cho-that-khe"
name = "Chợ Thất Khê"
unit = "06040"

[[schedules]]
name = "Cắt điện"
content = "dien"
channel = "boards"
targets = { endpoints = ["screen:cho-that-khe"] }
start = 2021-05-03T07:05:00
validity = "8h"

[[schedules]]
name = "Tiêm chủng"
content = "tiem"
channel = "boards"
targets = { endpoints = ["screen:cho-that-khe"] }
start = 2021-05-03T07:00:00
validity = "8h"

[[schedules]]
name = "Họp dân"
content = "hop"
channel = "boards"
priority = "priority"
targets = { endpoints = ["screen:cho-that-khe"] }
start = 2021-05-03T07:05:00
validity = "8h"
"""


def test_a_screens_programme_lists_priority_items_first_then_the_schedules_order(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    """Two normal schedules (the second in the plan on the board first) and a priority one
    written last: the screen gets the priority item first, then the normal ones in the
    order of their schedules, whatever the order they were sent in."""
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))
    import_plan_file(engine, boards_settings, write_plan(tmp_path, LOOP), clock.now())
    _fire(engine, boards_settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))  # 07:00
    _fire(engine, boards_settings, clock, datetime(2021, 5, 3, 0, 5, 1, tzinfo=UTC))  # 07:05
    market = _board(engine, "cho-that-khe")
    with engine.connect() as conn:
        shown = programmes(conn, [market.id], clock.now(), emergencies_alone=False)[market.id]
    assert [(i["priority"], i["title"]) for i in shown] == [
        ("priority", "Họp dân khu phố 3"),
        ("normal", "Lịch cắt điện"),
        ("normal", "Tiêm chủng mở rộng"),
    ]
    sent_first = min(shown, key=lambda i: i["id"])
    assert sent_first["title"] == "Tiêm chủng mở rộng"  # sent at 07:00, shown after 07:05's


def test_pairing_by_code_and_tokens(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    _imported(engine, boards_settings, tmp_path)
    now = datetime(2021, 5, 3, tzinfo=UTC)
    valid = timedelta(minutes=30)
    code, claim = pairing.request_code(engine, "cho-that-khe", now)
    assert pairing.collect(engine, "cho-that-khe", claim) is None  # waiting
    with pytest.raises(InputError, match="không phải mã đang hiện"):
        pairing.approve(
            engine,
            "screen:cho-that-khe",
            "000000" if code != "000000" else "111111",
            "bt",
            now,
            valid,
        )
    with pytest.raises(InputError, match="hết hạn"):
        pairing.approve(engine, "screen:cho-that-khe", code, "bt", now + timedelta(hours=1), valid)
    pairing.approve(engine, "screen:cho-that-khe", f"{code[:3]} {code[3:]}", "bt", now, valid)
    token = pairing.collect(engine, "cho-that-khe", claim)
    assert token
    with pytest.raises(InputError, match="không có yêu cầu ghép nối"):
        pairing.collect(engine, "cho-that-khe", claim)  # collected once
    assert pairing.check_token(engine, "cho-that-khe", token).address == "screen:cho-that-khe"
    with pytest.raises(InputError, match="không đúng"):
        pairing.check_token(engine, "ubnd-06046", token)  # another board's token
    newer = pairing.issue_token(engine, "screen:cho-that-khe", now)
    with pytest.raises(InputError, match="không đúng"):
        pairing.check_token(engine, "cho-that-khe", token)  # replaced
    assert pairing.check_token(engine, "cho-that-khe", newer)
    with pytest.raises(InputError, match="không có bảng"):
        pairing.screen(engine, "khong-co")


def test_the_web_side_refuses_a_wrong_token_and_serves_the_font(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    from dispatcher.web.app import create_app

    settings = boards_settings
    clock = _imported(engine, settings, tmp_path)
    client = TestClient(create_app(engine, settings, clock))
    answer = client.post(
        "/boards/cho-that-khe/displayed",
        json={"records": []},
        headers={"Authorization": "Bearer sai"},
    )
    assert answer.status_code == 403
    assert "mã của bảng cho-that-khe không đúng" in answer.json()["error"]
    assert client.get("/boards/khong-co").status_code == 404
    page = client.get("/boards/cho-that-khe")
    assert page.status_code == 200 and "Chợ Thất Khê" in page.text
    font = client.get("/boards/static/DejaVuSans-Bold.ttf")
    assert font.status_code == 200 and font.content[:4] == b"\x00\x01\x00\x00"
    assert client.get("/boards/static/..%2Fplugin.py").status_code == 404
    assert client.get("/boards/pairing", follow_redirects=False).status_code == 303


def test_a_board_item_with_no_text_and_no_image_is_refused_at_import(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))
    with pytest.raises(InputErrors) as refused:
        import_plan_file(
            engine, boards_settings, write_plan(tmp_path, PLAN + EMPTY_ITEM), clock.now()
        )
    (error,) = refused.value.errors
    assert error.field == "schedules[2].content" and error.value == "rong"
    assert "không có chữ (body) và không có ảnh (options.image)" in error.reason
    with engine.connect() as conn:
        assert conn.execute(select(Delivery.__table__)).all() == []


def test_a_board_image_too_large_is_refused_at_import(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    big = tmp_path / "to.png"
    Image.new("RGB", (4000, 3000), "red").save(big)
    plan = PLAN.replace("options = { seconds = 20 }", f'options = {{ image = "{big}" }}')
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))
    with pytest.raises((InputError, InputErrors)) as refused:
        import_plan_file(engine, boards_settings, write_plan(tmp_path, plan), clock.now())
    assert "4000×3000" in str(refused.value) and "options.image" in str(refused.value)
    with engine.connect() as conn:
        assert conn.execute(select(Delivery.__table__)).all() == []


def test_every_vietnamese_letter_is_in_the_shipped_font() -> None:
    from PIL import ImageFont

    from channels.boards.images import FONT

    font = ImageFont.truetype(str(FONT), 40)
    letters = (
        "aàảãáạăằẳẵắặâầẩẫấậbcdđeèẻẽéẹêềểễếệghiìỉĩíịklmnoòỏõóọôồổỗốộơờởỡớợpqrstuùủũúụưừửữứựvxyỳỷỹýỵ"
    )

    def drawn(text: str) -> bytes:
        image = Image.new("L", (80, 80))
        ImageDraw.Draw(image).text((10, 10), text, font=font, fill=255)
        return image.tobytes()

    nothing = drawn("\uffff")  # what a missing glyph draws (.notdef)
    missing = [c for c in letters + letters.upper() if drawn(c) == nothing]
    assert missing == []


def test_a_screen_whose_stream_died_silently_is_shown_offline(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    from channels.boards.devices import device_states, set_status
    from channels.boards.hub import BoardHub
    from coso.db import write

    clock = _imported(engine, boards_settings, tmp_path)
    market, office = _board(engine, "cho-that-khe"), _board(engine, "ubnd-06046")
    with write(engine) as conn:
        set_status(conn, [market.id, office.id], online=True, last_seen=clock.now())
    token = pairing.issue_token(engine, "screen:ubnd-06046", clock.now())
    hub = BoardHub(engine, clock.now, 0.1, 15, timedelta(seconds=45))
    hub.thread = threading.current_thread()  # no looking for items in this test
    loop = asyncio.new_event_loop()
    connected = hub.subscribe(office.id, "ubnd-06046", loop, pairing.digest(token))
    clock.advance(timedelta(minutes=2))
    hub._seen()
    states = device_states(engine, [market.id, office.id])
    assert not states[market.id].online and states[market.id].last_seen < clock.now()
    assert states[office.id].online and states[office.id].last_seen == clock.now()

    # The office's token is replaced (a stolen screen): its open stream is let go.
    pairing.issue_token(engine, "screen:ubnd-06046", clock.now())
    hub._seen()
    loop.run_until_complete(asyncio.sleep(0))
    assert connected.queue.get_nowait() is None
    loop.close()


def test_an_items_image_is_kept_by_checksum_and_served_to_the_screens(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    from dispatcher.web.app import create_app

    picture = tmp_path / "lich.png"
    Image.new("RGB", (320, 180), "navy").save(picture)
    plan = PLAN.replace("options = { seconds = 20 }", f'options = {{ image = "{picture}" }}')
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))
    import_plan_file(engine, boards_settings, write_plan(tmp_path, plan), clock.now())
    _fire(engine, boards_settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))
    market = _board(engine, "cho-that-khe")
    with engine.connect() as conn:
        (item,) = programmes(conn, [market.id], clock.now())[market.id]
    assert item["image"].startswith("/boards/images/") and item["image"].endswith(".png")
    client = TestClient(create_app(engine, boards_settings, clock))
    served = client.get(item["image"])
    assert served.status_code == 200 and served.content == picture.read_bytes()
    assert client.get("/boards/images/" + "0" * 64 + ".png").status_code == 404


def test_the_boards_template_lays_out_every_items_text(
    engine: Engine, boards_settings: Settings, tmp_path: Path
) -> None:
    """`[channels.boards] template`: the title in capitals above the item's own text (still
    rendered per unit), and the commune's line with the slot's date in the plan's zone."""
    settings = boards_settings
    settings.channels["boards"] = {
        "template": "{{ title | upper }}\n{{ body }}\nUBND xã thông báo ngày {{ date }}, {{ time }}"
    }
    clock = _imported(engine, settings, tmp_path)
    _fire(engine, settings, clock, datetime(2021, 5, 3, 0, 0, 1, tzinfo=UTC))  # 07:00:01
    market = _board(engine, "cho-that-khe")
    with engine.connect() as conn:
        shown = programmes(conn, [market.id], clock.now(), emergencies_alone=False)[market.id]
    assert shown[0]["text"].splitlines() == [
        "LỊCH TIẾP CÔNG DÂN",
        "Ủy ban nhân dân Xã Thất Khê tiếp công dân sáng thứ năm hằng tuần.",
        "UBND xã thông báo ngày 03/05/2021, 07:00",
    ]


@pytest.mark.parametrize(
    ("template", "named"),
    [("{{ title ", "lỗi mẫu"), ("{{ ho_ten }}", "ho_ten")],
)
def test_a_bad_boards_template_is_refused_naming_the_setting(template: str, named: str) -> None:
    from channels.boards.settings import BoardSettings

    with pytest.raises(ValueError) as refused:
        BoardSettings(template=template)
    assert named in str(refused.value) and "template" in str(refused.value)


def test_led_text_is_as_large_as_fits_or_in_pages_at_a_size_read_across_the_street() -> None:
    from channels.boards.images import line_boxes, smallest_size, text_pages

    (short,) = text_pages("Họp dân lúc 19 giờ", 128, 64)
    assert short.size > smallest_size(64)  # a short text is as large as fits
    notice = (
        "Thôn Nà Pài thông báo: từ thứ hai tuần sau, xe thu gom rác đến vào sáng thứ hai, "
        "thứ tư và thứ sáu; bà con để rác đúng nơi quy định, phân loại rác tái chế, không "
        "đốt rác gần nhà ở. Xem thêm https://thatkhe.langson.gov.vn/thong-bao-rac-thai"
    )
    for width, height, least in [(64, 16, 10), (128, 32, 10), (128, 64, 16), (192, 96, 24)]:
        pages = text_pages(notice, width, height)
        assert len(pages) > 1 and smallest_size(height) == least
        assert {p.size for p in pages} == {least}
        # every letter, in order; the words whole but the address, wider than the board
        assert "".join(p.text.replace(" ", "") for p in pages) == notice.replace(" ", "")
        words, whole = [w for p in pages for w in p.text.split()], notice.split()[:-1]
        assert words[: len(whole)] == whole
        for page in pages:
            for left, top, right, bottom in line_boxes(page, width, height):
                assert left >= 0 and top >= 0 and right <= width and bottom <= height
