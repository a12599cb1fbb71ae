"""A commune's operator sends an emergency from the console on a phone: the button, the
form, then the emergency's own page, whose counts follow the channels without reloading;
cancelling asks first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.console import add_user, signed_in
from tests.browser.pages import assert_fits_phone, screenshot
from tests.browser.server import CosoServer


def test_an_operator_sends_an_emergency_from_a_phone_and_watches_it_arrive(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    coso = coso_server({"console": {"session_secret": "browser-emergency-key-0123456789"}})
    endpoints = tmp_path / "diem-nhan.csv"
    endpoints.write_text(
        "channel,address,name,unit\n"
        "web,bulletin:06040,Bản tin xã,06040\n"
        "web,bulletin:06112,Bản tin xã khác,06112\n",
        encoding="utf-8",
    )
    coso.cli("endpoints", "import", str(endpoints))
    add_user(coso, "van-hanh-a", "Cán bộ xã", "operator", ["06040"])
    page = signed_in(new_page(coso.url, "phone"), "van-hanh-a")

    page.get_by_role("link", name="Khẩn cấp").click()
    page.get_by_role("link", name="Phát tin khẩn cấp").click()
    page.get_by_label("Tiêu đề").fill("Cảnh báo lũ quét")
    page.get_by_label("Nội dung").fill("Lũ quét trên sông Kỳ Cùng: di chuyển lên chỗ cao ngay.")
    page.get_by_label("Xã Thất Khê (06040)").check()
    assert_fits_phone(page)
    page.get_by_role("button", name="Phát ngay").click()

    expect(page.get_by_role("heading", name="Cảnh báo lũ quét")).to_be_visible()
    reference = page.get_by_role("heading", level=1).inner_text()
    assert reference.startswith("KC-")
    # Published while the page is open: the count changes without a reload.
    reached = page.locator('tr.total[data-channel="web"] td.reached')
    expect(reached).to_have_text("1", timeout=30_000)
    expect(page.locator("#progress")).to_contain_text("đang phát")
    assert_fits_phone(page)
    screenshot(page, "khan-cap-phone")

    bulletin = new_page(coso.url, "phone")
    bulletin.goto("/bulletin?unit=06040")
    expect(bulletin.locator("article.pinned")).to_contain_text("Cảnh báo lũ quét")

    page.get_by_role("link", name="Huỷ tin khẩn cấp").click()
    expect(page.get_by_role("heading", name=f"Huỷ tin khẩn cấp {reference}?")).to_be_visible()
    page.get_by_label("Lý do").fill("nước đã rút")
    page.get_by_role("button", name="Xác nhận huỷ").click()
    expect(page.locator("#progress")).to_contain_text("đã huỷ")
    expect(page.get_by_text("nước đã rút").first).to_be_visible()

    bulletin.reload()
    expect(bulletin.locator("article.pinned")).to_have_count(0)
    expect(bulletin.get_by_role("heading", name="Cảnh báo lũ quét")).to_be_visible()
