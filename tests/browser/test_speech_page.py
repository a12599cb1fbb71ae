"""An editor speaks a text-only item from its page on a phone: the new draft version carries
speech labelled "giọng đọc tổng hợp", which the approver listens to and approves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser.pages import assert_fits_phone, assert_nothing_from_outside
from tests.browser.server import CosoServer
from tests.browser.test_full_flow import (
    APPROVER,
    EDITOR,
    accounts_and_endpoints,
    approve,
    logged_in,
)

PLAN = """\
[plan]
number = "KHẨN/02"
title = "Phòng chống thiên tai"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "canh-bao"
kind = "text"
title = "Cảnh báo mưa lớn"
body = "UBND xã thông báo: từ 7h30 ngày 14/10/2026 mưa lớn 200 mm, bà con chú ý."
state = "approved"

[[targets]]
channel = "loudspeaker"
count = 1
per = "week"
units = ["06040"]
"""


def test_editor_speaks_a_text_item_on_a_phone_and_the_approver_approves_the_speech(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server()
    accounts_and_endpoints(coso, tmp_path, EDITOR, APPROVER)
    plan = tmp_path / "ke-hoach.toml"
    plan.write_text(PLAN, encoding="utf-8")
    coso.cli("plan", "import", str(plan))

    editor = logged_in(new_page(coso.url, "phone"), EDITOR)
    editor.goto("/plans/KHẨN/02/content/canh-bao")
    editor.get_by_label("Hồi chuông trước khi đọc").check()
    editor.get_by_role("button", name="Đọc thành tiếng (bản nháp)").click()
    draft = editor.locator("article.version[data-version='2']")
    expect(draft).to_contain_text("bản nháp", timeout=60_000)
    expect(draft.locator(".synthesised")).to_have_text("giọng đọc tổng hợp")
    expect(draft).to_contain_text("espeak-ng vi")
    # the approved version without audio still goes out until this one is approved
    expect(editor.get_by_text("Đang phát: phiên bản 1")).to_be_visible()
    assert_fits_phone(editor)

    # What the page plays is the speech as prepared: an mp3 the editor's session may fetch.
    source = draft.locator("audio").get_attribute("src")
    assert source and source.endswith(".mp3")
    cookies = {c["name"]: c["value"] for c in editor.context.cookies()}
    clip = httpx.get(coso.url + source, cookies=cookies, timeout=30)
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/mpeg"
    assert len(clip.content) > 10_000

    approver = logged_in(new_page(coso.url), APPROVER)
    approver.goto("/plans/KHẨN/02/content/canh-bao")
    approve(approver, 2)
    going_out = approver.locator("article.version[data-version='2']")
    expect(going_out.locator(".synthesised")).to_have_text("giọng đọc tổng hợp")
    for page in (editor, approver):
        assert_nothing_from_outside(page)
