"""The public bulletin in a real browser, on a phone and on a desktop, as `coso serve`
publishes a plan imported through the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Page, expect

from coso.clock import SystemClock
from tests.browser.pages import assert_fits_phone, assert_nothing_from_outside, screenshot
from tests.browser.server import CosoServer
from tests.fault_services import wait_until
from tests.loudspeakers import slot_in
from tests.plans import write_plan

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST_ROOM = 5  # seconds between writing a slot and the slot; an import takes about 2


def notice_plan(number: str, start: datetime) -> str:
    """A one-off post to two communes' bulletins at `start`."""
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền tiêm chủng mở rộng"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "tiem-chung"
title = "Lịch tiêm chủng tháng này — {{{{ unit.name }}}}"
body = \"\"\"
Kính gửi bà con {{{{ unit.name }}}}.

Trạm y tế xã tiêm vắc-xin sởi cho trẻ từ 9 tháng tuổi vào sáng thứ bảy; \
mang theo sổ tiêm chủng.
\"\"\"
state = "approved"

[[endpoints]]
channel = "web"
address = "bulletin:06040"
unit = "06040"

[[endpoints]]
channel = "web"
address = "bulletin:06046"
unit = "06046"

[[schedules]]
name = "Đăng lịch tiêm chủng"
content = "tiem-chung"
channel = "web"
targets = {{ endpoints = ["bulletin:06040", "bulletin:06046"] }}
start = {start.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}
validity = "2h"
misfire_grace = "30m"
"""


def import_for_a_near_slot(coso: CosoServer, tmp_path: Path) -> str:
    """Import the notice plan through the command line, its slot a few seconds ahead; the
    plan's number. A schedule fires from its import on, so a slot that a slow import
    overtook never fires: then another plan, with twice the room."""
    room = FIRST_ROOM
    for attempt in range(1, 4):
        number = f"{40 + attempt}/KH-UBND"
        slot = slot_in(room)
        plan = write_plan(tmp_path, notice_plan(number, slot), name=f"plan-{attempt}.toml")
        coso.cli("plan", "import", str(plan))
        if SystemClock().now() < slot:
            return number
        room *= 2
    raise AssertionError(f"three imports each took longer than the room given ({room // 2} s)")


def _published(server: CosoServer, text: str) -> bool:
    return text in httpx.get(f"{server.url}/bulletin", timeout=5).text


def test_bulletin_shows_a_published_plan_on_a_phone_and_a_desktop(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    number = import_for_a_near_slot(coso, tmp_path)
    title = "Lịch tiêm chủng tháng này — Xã Thất Khê"
    wait_until(lambda: _published(coso, title), 60, "the post on /bulletin")

    for size in ("phone", "desktop"):
        page = new_page(coso.url, size)
        page.goto("/bulletin")
        posts = page.locator("article.post", has_text=number)
        post = posts.filter(has_text=title)
        expect(post).to_be_visible()
        expect(post).to_contain_text("Kính gửi bà con Xã Thất Khê.")
        expect(post).to_contain_text("vắc-xin sởi cho trẻ từ 9 tháng tuổi")
        expect(posts).to_have_count(2)  # and the other commune's
        if size == "phone":
            assert_fits_phone(page)
        assert_nothing_from_outside(page)
        screenshot(page, f"bulletin-{size}")
