"""A CAP alert outside auto mode, posted by an agency to a running `coso serve`, waits on
the console's Cảnh báo page; an editor of the province approves it on a phone and it
reaches the commune's bulletin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Page, expect

from tests.browser.console import add_user, reload_until, signed_in
from tests.browser.pages import assert_fits_phone, screenshot
from tests.browser.server import CosoServer
from tests.cap_examples import THAT_KHE, amber

TOKEN = "karo-khoa-bi-mat-du-dai-0003"


def test_a_waiting_alert_is_approved_on_a_phone(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server(
        {
            "cap": {
                "senders": [{"name": "congan", "sender": "KARO@CLETS.DOJ.CA.GOV", "token": TOKEN}]
            }
        }
    )
    endpoints = tmp_path / "endpoints.csv"
    endpoints.write_text(
        f"channel,address,name,unit\nweb,bulletin:{THAT_KHE},Bản tin Thất Khê,{THAT_KHE}\n",
        encoding="utf-8",
    )
    coso.cli("endpoints", "import", str(endpoints))
    add_user(coso, "bien-tap", "Người Biên Tập", "editor", ["20"])
    answer = httpx.post(
        f"{coso.url}/api/cap/alerts",
        content=amber(datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"},
        timeout=60,
    )
    assert answer.json()["outcome"] == "waiting", answer.text

    page = signed_in(new_page(coso.url, "phone"), "bien-tap")
    page.goto("/cap")
    waiting = page.locator("section.card").filter(has_text="Amber Alert in Los Angeles County")
    expect(waiting).to_be_visible()
    expect(waiting).to_contain_text("Xã Thất Khê")
    assert_fits_phone(page)
    screenshot(page, "cap-phone")
    waiting.get_by_role("button", name="Duyệt và phát ngay").click()
    expect(page.get_by_text("Không có cảnh báo nào chờ duyệt.")).to_be_visible()
    expect(page.get_by_role("cell", name="đã phát khẩn cấp")).to_be_visible()

    page.goto("/bulletin")
    reload_until(page, page.get_by_text("Amber Alert in Los Angeles County"), "the alert")
