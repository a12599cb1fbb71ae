"""A plan's report page on a phone: the form, the charts and the tables fit 390 px (wide
tables scroll inside their box), and nothing is fetched from outside coso."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.web.app import create_app
from tests.browser.console import signed_in
from tests.browser.pages import assert_fits_phone, screenshot
from tests.conftest import ServerThread
from tests.console import PASSWORD, make_user
from tests.test_report_exports import WRITTEN, two_days  # noqa: F401

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def console(two_days: Engine, settings: Settings) -> Iterator[str]:  # noqa: F811
    make_user(two_days, "quan-tri", ["administrator"], [])
    with ServerThread(create_app(two_days, settings, ManualClock(WRITTEN))) as server:
        yield server.url


def test_report_page_fits_a_phone_with_its_charts_and_tables(
    console: str, new_page: Callable[..., Page]
) -> None:
    page = signed_in(new_page(console, "phone"), "quan-tri", PASSWORD)
    page.goto("/plans/21/KH-UBND")
    page.get_by_role("link", name="Báo cáo kết quả").click()
    page.get_by_label("hoặc từ ngày").fill("03/05/2021")
    page.get_by_label("đến ngày").fill("04/05/2021")
    page.get_by_label("đơn vị", exact=True).check()
    page.get_by_role("button", name="Xem báo cáo").click()
    expect(page.get_by_role("img", name="Tỷ lệ đạt chỉ tiêu")).to_be_visible()
    expect(page.get_by_role("img", name="Đã đến người nghe so với kế hoạch")).to_be_visible()
    expect(page.get_by_text("Xã Tràng Định (0/2)")).to_be_visible()
    expect(page.get_by_role("link", name="XLSX")).to_have_attribute(
        "href",
        "/plans/21/KH-UBND/report.xlsx?period=&from=03%2F05%2F2021&until=04%2F05%2F2021"
        "&unit=&by=channel&by=unit&number=&place=",
    )
    assert_fits_phone(page)
    screenshot(page, "report-phone", full_page=True)
