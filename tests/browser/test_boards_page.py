"""Web boards in a real browser: two screens paired (a token, and a code an editor
approves in the console), an item on both within 2 s of its slot reported `displayed` with
the true times, one screen cut off (the browser's own offline mode) that goes on showing
its programme and uploads its display records when back, and an emergency that replaces
the programme on both within 2 s and gives it back when it ends; a screen's loop of
several items (priority first, then the schedules' order, each its seconds) that an
emergency interrupts and that resumes with the item it was showing; and a text too long
for the screen that scrolls to its end before the next item."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from coso.clock import SystemClock
from tests.browser.console import add_user, signed_in
from tests.browser.pages import assert_fits_phone, screenshot
from tests.browser.server import CosoServer
from tests.fault_services import wait_until
from tests.loudspeakers import slot_in
from tests.plans import write_plan

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

BOARDS = """\
[plan]
number = "{number}"
title = "Bảng tin điện tử ở chợ và trụ sở xã"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "{key}"
title = "{title}"
body = "{body}"
state = "approved"

[[endpoints]]
channel = "boards"
address = "screen:cho-that-khe"
name = "Chợ Thất Khê"
unit = "06040"

[[endpoints]]
channel = "boards"
address = "screen:ubnd-06046"
name = "Trụ sở UBND xã"
unit = "06046"
"""

SCHEDULE = """
[[schedules]]
name = "{title}"
content = "{key}"
channel = "boards"
priority = "{priority}"
targets = {{ endpoints = ["screen:cho-that-khe", "screen:ubnd-06046"] }}
start = {start}
validity = "{validity}"
options = {{ seconds = {seconds} }}
"""

NORMAL = {
    "key": "tiep-dan",
    "title": "Lịch tiếp công dân tháng 5",
    "body": "Ủy ban nhân dân xã tiếp công dân vào sáng thứ năm hằng tuần, "
    "từ 7 giờ 30 đến 11 giờ, tại phòng một cửa. Đề nghị bà con mang theo căn cước.",
}
URGENT = {
    "key": "bao-so-3",
    "title": "Cảnh báo bão số 3",
    "body": "Bão số 3 đổ bộ chiều nay: người dân ở trong nhà, không ra sông suối, "
    "gia cố nhà cửa, chuẩn bị đèn pin và nước uống.",
}


CONTENT = """
[[content]]
key = "{key}"
title = "{title}"
body = "{body}"
state = "approved"
"""
# What a screen shows, as the page starts each item: [{id, at}] (at: ms since the epoch).
WATCH_STARTS = """() => {
  window.starts = [];
  new MutationObserver(() => {
    const b = document.body.dataset;
    const at = Number(b.shownAt);
    const last = window.starts[window.starts.length - 1];
    if (b.showing && (!last || last.at !== at)) { window.starts.push({ id: b.showing, at: at }); }
  }).observe(document.body, { attributes: true, attributeFilter: ["data-shown-at"] });
}"""


def import_programme_near(
    coso: CosoServer, tmp_path: Path, items: list[dict[str, Any]], tag: str
) -> datetime:
    """A plan with one schedule per item (its content, priority, seconds and validity, in
    this order in the file), all on both boards at one slot a few seconds ahead; the slot."""
    room = 8
    first, *others = items
    for attempt in range(1, 4):
        slot = slot_in(room)
        start = f"{slot.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}"
        text = BOARDS.format(number=f"{tag}{attempt}/KH-UBND", **first)
        text += "".join(CONTENT.format(**item) for item in others)
        text += "".join(SCHEDULE.format(start=start, **item) for item in items)
        coso.cli("plan", "import", str(write_plan(tmp_path, text, name=f"{tag}-{attempt}.toml")))
        if SystemClock().now() < slot:
            return slot
        room *= 2
    raise AssertionError("three imports each took longer than the room given")


def paired_screen(coso: CosoServer, new_page: Callable[..., Page], tmp_path: Path) -> Page:
    """The market's screen at 1280×720, opened with its token, online, its starts watched."""
    coso.cli(
        "plan",
        "import",
        str(write_plan(tmp_path, BOARDS.format(number="1/KH-BT", **NORMAL), name="boards.toml")),
    )
    link = coso.cli("boards", "token", "screen:cho-that-khe").strip().splitlines()[-1]
    page = board_page(new_page, coso.url, 1280, 720)
    page.goto(link.replace(coso.url, ""))
    expect(page.locator("body")).to_have_attribute("data-online", "1", timeout=15_000)
    page.evaluate(WATCH_STARTS)
    return page


def programme_of(page: Page, name: str) -> list[dict[str, Any]]:
    """The programme a screen keeps, in coso's order."""
    stored = page.evaluate(f"localStorage.getItem('coso-board:{name}') || '{{}}'")
    return list(json.loads(stored).get("items", []))


def starts_of(page: Page) -> list[tuple[str, float]]:
    """Each item the page put on screen, in order: (delivery id, when in seconds)."""
    return [(s["id"], s["at"] / 1000) for s in page.evaluate("window.starts")]


def import_near(
    coso: CosoServer,
    tmp_path: Path,
    texts: dict[str, str],
    *,
    priority: str,
    validity: str,
    seconds: int,
    tag: str,
    room: int = 8,
) -> datetime:
    """A plan with one schedule on both boards `room` seconds ahead; its slot."""
    for attempt in range(1, 4):
        slot = slot_in(room)
        number = f"{tag}{attempt}/KH-UBND"
        start = f"{slot.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}"
        text = BOARDS.format(number=number, **texts) + SCHEDULE.format(
            start=start, priority=priority, validity=validity, seconds=seconds, **texts
        )
        coso.cli("plan", "import", str(write_plan(tmp_path, text, name=f"{tag}-{attempt}.toml")))
        if SystemClock().now() < slot:
            return slot
        room *= 2
    raise AssertionError("three imports each took longer than the room given")


def showing(page: Page) -> str:
    return str(page.evaluate("document.body.dataset.showing || ''"))


def shown_at(page: Page) -> datetime:
    millis = int(page.evaluate("Number(document.body.dataset.shownAt)"))
    return datetime.fromtimestamp(millis / 1000, UTC)


def kept(page: Page, name: str) -> list[dict[str, Any]]:
    """The display records a board keeps until coso has them."""
    stored = page.evaluate(f"localStorage.getItem('coso-board:{name}') || '{{}}'")
    return list(json.loads(stored).get("pending", []))


def pending(page: Page, name: str) -> int:
    return len(kept(page, name))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rows(coso: CosoServer, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(coso.work / "coso.db") as db:
        return list(db.execute(query, args))


def slot_of(coso: CosoServer, delivery: str) -> datetime:
    """When a delivery's slot was (a plan imported again, its first slot overtaken by a slow
    import, may still have fired: each check goes by the delivery it sees)."""
    (at,) = rows(coso, "SELECT scheduled_for FROM delivery WHERE id = ?", int(delivery))[0]
    return datetime.fromisoformat(at).replace(tzinfo=UTC)


def board_page(new_page: Callable[..., Page], url: str, width: int, height: int) -> Page:
    page = new_page(url, "desktop")
    page.set_viewport_size({"width": width, "height": height})
    return page


def test_two_screens_show_report_go_offline_and_give_way_to_an_emergency(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    # The boards exist before anything is scheduled on them.
    coso.cli(
        "plan",
        "import",
        str(write_plan(tmp_path, BOARDS.format(number="1/KH-BT", **NORMAL), name="boards.toml")),
    )
    add_user(coso, "bientap", "Nguyễn Văn Biên", "editor", ["20"])

    # One screen opens the address with its token; the other shows a pairing code.
    link = coso.cli("boards", "token", "screen:cho-that-khe").strip().splitlines()[-1]
    market = board_page(new_page, coso.url, 1920, 1080)
    market.goto(link.replace(coso.url, ""))
    office = board_page(new_page, coso.url, 1280, 720)
    office.goto("/boards/ubnd-06046")
    code = office.locator("#code")
    expect(code).to_have_text(re.compile(r"\d{3} \d{3}"))
    console = signed_in(new_page(coso.url, "phone"), "bientap")
    console.goto("/boards/pairing")
    console.get_by_label("Mã trên màn hình").fill(code.inner_text())
    console.get_by_role("button", name="Ghép nối").click()
    expect(console.get_by_text("Đã ghép nối screen:ubnd-06046.")).to_be_visible()
    assert_fits_phone(console)
    for page in (market, office):
        expect(page.locator("body")).to_have_attribute("data-online", "1", timeout=15_000)
        expect(page.locator("#text")).to_have_text("Chưa có thông báo")

    # An item at its slot, on both, reported displayed at the true time.
    import_near(coso, tmp_path, NORMAL, priority="normal", validity="10m", seconds=3, tag="2")
    for page in (market, office):
        expect(page.locator("#title")).to_have_text(NORMAL["title"], timeout=20_000)
        lateness = (shown_at(page) - slot_of(coso, showing(page))).total_seconds()
        assert -0.5 <= lateness <= 2.0, lateness
    item = int(showing(market))
    screenshot(market, "board-1920x1080")
    screenshot(office, "board-1280x720")

    def displayed() -> list[tuple[Any, ...]]:
        return rows(
            coso,
            "SELECT d.id, d.state, a.at, d.scheduled_for FROM delivery d JOIN activity_entry a "
            "ON a.delivery_id = d.id AND a.event = 'displayed' WHERE d.channel = 'boards'",
        )

    wait_until(lambda: len(displayed()) >= 2, 15, "two displayed entries")
    for _id, state, at, scheduled in displayed():
        assert state == "displayed"
        when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        slot = datetime.fromisoformat(scheduled).replace(tzinfo=UTC)
        assert 0 <= (when - slot).total_seconds() <= 2.0, (at, scheduled)

    # The office's screen loses its link: it goes on looping its programme, and keeps the
    # records of what it showed until it is back.
    office.context.set_offline(True)
    expect(office.locator("body")).to_have_attribute("data-online", "0", timeout=10_000)
    cut = SystemClock().now()

    def kept_since_cut() -> list[dict[str, Any]]:
        return [r for r in kept(office, "ubnd-06046") if _time(r["started_at"]) > cut]

    wait_until(lambda: len(kept_since_cut()) >= 2, 20, "records kept offline")
    expect(office.locator("#title")).to_have_text(NORMAL["title"])
    office.reload()  # the screen restarts with no link: its page, programme and records stay
    assert office.evaluate("navigator.serviceWorker.controller !== null")  # from its worker
    expect(office.locator("#title")).to_have_text(NORMAL["title"])
    expect(office.locator("body")).to_have_attribute("data-online", "0")
    assert showing(office) != ""
    waiting = {r["id"] for r in kept(office, "ubnd-06046")}
    office.context.set_offline(False)
    wait_until(lambda: pending(office, "ubnd-06046") == 0, 30, "records uploaded when back")
    office_id = rows(coso, "SELECT id FROM endpoint WHERE address = 'screen:ubnd-06046'")[0][0]
    uploaded = {
        r[0]
        for r in rows(coso, "SELECT record_id FROM board_display WHERE endpoint_id = ?", office_id)
    }
    assert waiting <= uploaded, waiting - uploaded

    # An emergency replaces the programme on both within 2 s, and gives it back at its end.
    import_near(coso, tmp_path, URGENT, priority="emergency", validity="20s", seconds=30, tag="3")
    for page in (market, office):
        expect(page.locator("body")).to_have_class(re.compile("emergency"), timeout=20_000)
        expect(page.locator("#title")).to_have_text(URGENT["title"])
        assert (shown_at(page) - slot_of(coso, showing(page))).total_seconds() <= 2.0
    screenshot(market, "board-emergency-1920x1080")
    for page in (market, office):
        expect(page.locator("body")).not_to_have_class(re.compile("emergency"), timeout=40_000)
        expect(page.locator("#title")).to_have_text(NORMAL["title"])
        assert showing(page) != ""
    assert int(showing(market)) == item
    states = rows(
        coso, "SELECT state, COUNT(*) FROM delivery WHERE channel = 'boards' GROUP BY state"
    )
    assert dict(states) == {"displayed": 4}, states


FIRST = {
    "key": "cat-dien",
    "title": "Lịch cắt điện thôn Nà Pài",
    "body": "Thứ bảy cắt điện từ 7 giờ đến 11 giờ để sửa đường dây.",
    "priority": "normal",
    "seconds": 3,
    "validity": "10m",
}
SECOND = {
    "key": "tiem-chung",
    "title": "Tiêm chủng mở rộng",
    "body": "Trạm y tế xã tiêm vắc xin cho trẻ dưới 5 tuổi vào ngày 25 hằng tháng.",
    "priority": "normal",
    "seconds": 120,
    "validity": "10m",
}
NOTICE = {
    "key": "hop-dan",
    "title": "Họp dân khu phố 3",
    "body": "Mời đại diện các hộ họp tại nhà văn hóa lúc 19 giờ tối nay.",
    "priority": "priority",
    "seconds": 3,
    "validity": "10m",
}


def test_a_screen_loops_priority_first_then_in_schedule_order_and_resumes_after_an_emergency(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    market = paired_screen(coso, new_page, tmp_path)
    # Two normal schedules and, after them in the plan, a priority one: all at one slot.
    import_programme_near(coso, tmp_path, [FIRST, SECOND, NOTICE], tag="4")
    wait_until(lambda: len(programme_of(market, "cho-that-khe")) == 3, 30, "three items")
    programme = programme_of(market, "cho-that-khe")
    assert [(i["priority"], i["title"]) for i in programme] == [
        ("priority", NOTICE["title"]),
        ("normal", FIRST["title"]),
        ("normal", SECOND["title"]),
    ]
    titles = {str(i["id"]): i["title"] for i in programme}

    # The page shows them in that order, each for its seconds (not one after another at once).
    # On a busy machine the three may reach the screen in two pushes: a normal item already
    # on screen when the priority item comes is cut and comes again in its turn.
    wait_until(lambda: NOTICE["title"] in shown_titles(market, titles), 30, "the priority item")
    k = shown_titles(market, titles).index(NOTICE["title"])
    assert k <= 2, shown_titles(market, titles)
    wait_until(lambda: len(starts_of(market)) >= k + 3, 30, "three items shown")
    (n, n_at), (f, f_at), (s, s_at) = starts_of(market)[k : k + 3]
    assert [titles[n], titles[f], titles[s]] == [NOTICE["title"], FIRST["title"], SECOND["title"]]
    assert f_at - n_at >= 2.5 and s_at - f_at >= 2.5, (n_at, f_at, s_at)

    # An emergency comes while the second normal item shows (its 120 s): when it ends, the
    # loop resumes with that item, not from the start of the programme.
    expect(market.locator("#title")).to_have_text(SECOND["title"])
    import_near(coso, tmp_path, URGENT, priority="emergency", validity="20s", seconds=30, tag="5")
    expect(market.locator("body")).to_have_class(re.compile("emergency"), timeout=20_000)
    expect(market.locator("body")).not_to_have_class(re.compile("emergency"), timeout=40_000)
    expect(market.locator("#title")).to_have_text(SECOND["title"])
    shown = shown_titles(market, titles)
    assert shown[k : k + 3] == [NOTICE["title"], FIRST["title"], SECOND["title"]]
    assert shown[k + 3 :] == ["khẩn cấp", SECOND["title"]], shown


def shown_titles(page: Page, titles: dict[str, str]) -> list[str]:
    """What the page has put on screen, in order: titles, "khẩn cấp" for anything else."""
    return [titles.get(i, "khẩn cấp") for i, _ in starts_of(page)]


LONG_WEB = {
    "key": "quy-uoc",
    "title": "Quy ước thôn văn hóa",
    "body": " ".join(
        f"Điều {n}. Mỗi hộ gia đình giữ gìn vệ sinh đường làng ngõ xóm, không đổ rác ra "
        "sông suối, tham gia ngày chủ nhật xanh, đóng góp quỹ khuyến học và giúp đỡ các "
        "gia đình khó khăn trong thôn."
        for n in range(1, 15)
    ),
    "priority": "normal",
    "seconds": 3,
    "validity": "10m",
}
AFTER = FIRST | {"key": "sau-do", "title": "Thông báo tiếp theo"}


def test_a_text_too_long_for_the_screen_scrolls_to_its_end_before_the_next_item(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    market = paired_screen(coso, new_page, tmp_path)
    import_programme_near(coso, tmp_path, [LONG_WEB, AFTER], tag="6")
    expect(market.locator("#title")).to_have_text(LONG_WEB["title"], timeout=20_000)
    long_id = showing(market)
    # Too long to fit at the smallest size the page sets text in: it scrolls, from its top.
    assert market.evaluate(
        "document.getElementById('text').scrollHeight > "
        "document.getElementById('box').clientHeight + 100"
    )
    expect(market.locator("#text")).to_have_class(re.compile("scrolling"))
    # Its 3 seconds are too short to scroll it: it stays until its last line has been shown.
    reached = market.wait_for_function(
        """(id) => {
          if (document.body.dataset.showing !== id) { return "gone before its end"; }
          const text = document.getElementById("text").getBoundingClientRect();
          const box = document.getElementById("box").getBoundingClientRect();
          return text.bottom <= box.bottom + 1 ? "its end shown" : false;
        }""",
        arg=long_id,
        polling="raf",
        timeout=90_000,
    ).json_value()
    assert reached == "its end shown"
    assert market.evaluate(  # and the last words are inside the screen's box
        """() => {
          const range = document.createRange();
          const text = document.getElementById("text").firstChild;
          range.setStart(text, text.length - 12);
          range.setEnd(text, text.length);
          const words = range.getBoundingClientRect();
          const box = document.getElementById("box").getBoundingClientRect();
          return words.top >= box.top && words.bottom <= box.bottom + 1;
        }"""
    )
    # Then the loop goes on to the next item.
    expect(market.locator("#title")).to_have_text(AFTER["title"], timeout=20_000)


def test_an_item_sent_ahead_of_its_slot_waits_on_the_screen_and_goes_on_at_the_slot(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    """Board items go out ahead of their slot (the boards' cue, 10 s by default): the screen
    has the item in its programme before the slot, shows nothing new until then, and puts
    it on at the slot by coso's clock; coso logs it displayed at that time. A screen whose
    own clock is 30 s slow puts it on at the slot too."""
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    market = paired_screen(coso, new_page, tmp_path)
    expect(market.locator("#text")).to_have_text("Chưa có thông báo")
    link = coso.cli("boards", "token", "screen:ubnd-06046").strip().splitlines()[-1]
    slow = board_page(new_page, coso.url, 1280, 720)
    slow.add_init_script("(() => { const real = Date.now; Date.now = () => real() - 30000; })()")
    slow.goto(link.replace(coso.url, ""))
    expect(slow.locator("body")).to_have_attribute("data-online", "1", timeout=15_000)
    slot = import_near(
        coso, tmp_path, NORMAL, priority="normal", validity="10m", seconds=5, tag="4", room=25
    )
    wait_until(lambda: programme_of(market, "cho-that-khe"), 20, "the item on the programme")
    arrived = SystemClock().now()
    assert arrived < slot, (arrived, slot)  # it came ahead of its slot
    (item,) = programme_of(market, "cho-that-khe")
    assert _time(item["starts_at"]) == slot
    assert showing(market) == ""
    expect(market.locator("#text")).to_have_text("Chưa có thông báo")
    wait_until(lambda: programme_of(slow, "ubnd-06046"), 20, "the item on the slow screen")
    assert showing(slow) == ""
    expect(market.locator("#title")).to_have_text(NORMAL["title"], timeout=30_000)
    lateness = (shown_at(market) - slot).total_seconds()
    assert 0 <= lateness <= 1.0, lateness
    expect(slow.locator("#title")).to_have_text(NORMAL["title"], timeout=5_000)
    assert (SystemClock().now() - slot).total_seconds() < 5  # not 30 s late by its clock
    wait_until(
        lambda: (
            rows(coso, "SELECT state FROM delivery WHERE id = ?", item["id"]) == [("displayed",)]
        ),
        15,
        "the delivery displayed",
    )
    started = rows(coso, "SELECT started_at FROM board_display WHERE delivery_id = ?", item["id"])
    assert started, "no display record"
    on = datetime.fromisoformat(started[0][0]).replace(tzinfo=UTC)
    assert 0 <= (on - slot).total_seconds() <= 1.0, (on, slot)
