"""Broadcast sessions in a real browser: a ward's operator on a 390-pixel phone sees the
ward's sessions and where they come from, adds a session of the ward's own (a mistyped
start refused, naming it, with the rest of the form kept), cancels a day and sees the
day's items moved on in the programme; an editor queues an item into the sessions from the
schedule form, refused with the session named when it does not fit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from coso.clock import date_text
from tests.browser.console import add_user, module_server, signed_in
from tests.browser.pages import assert_fits_phone, screenshot
from tests.browser.server import CosoServer
from tests.plans import write_plan
from tests.session_plans import CUA_NAM, HOAN_KIEM, monday_ahead, wards_plan

NUMBER = "12/KH-UBND"
MONDAY = monday_ahead()
OPERATOR, EDITOR = "vanhanh-cuanam", "bientap-hanoi"


@pytest.fixture(scope="module")
def coso(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[CosoServer]:
    with module_server(tmp_path_factory, sqlite_template, start=False) as server:
        folder = tmp_path_factory.mktemp("plans")
        text = wards_plan(MONDAY, until=MONDAY + timedelta(days=4))
        text += "".join(
            f'[[content]]\nkey = "{k}"\ntitle = "{t}"\nstate = "approved"\n\n'
            for k, t in (("tin-d", "Tin D"), ("tin-e", "Tin E"))
        )
        server.cli("plan", "import", str(write_plan(folder, text)))
        add_user(server, OPERATOR, "Lê Thị Cửa Nam", "operator", [CUA_NAM])
        add_user(server, EDITOR, "Biên tập Hà Nội", "editor", ["01"])
        yield server.start()


def test_a_ward_operator_adds_a_session_and_cancels_a_day_on_a_phone(
    coso: CosoServer, new_page
) -> None:
    page: Page = signed_in(new_page(coso.url, "phone"), OPERATOR)
    page.get_by_role("link", name="Buổi phát").click()
    expect(page.get_by_role("heading", name="Các buổi của Phường Cửa Nam")).to_be_visible()
    sessions = page.locator("#unit-sessions")
    expect(sessions).to_contain_text("Sáng")
    expect(sessions).to_contain_text("của mọi phường")
    assert_fits_phone(page)

    # A start mistyped: refused naming it; what was typed is still there.
    page.get_by_label("Tên buổi").fill("Tối")
    page.get_by_label("Bắt đầu (HH:MM)").fill("19h7")
    page.get_by_label("Độ dài (phút: 15, 45, hoặc 1h30m)").fill("20")
    page.get_by_role("button", name="Thêm buổi").click()
    expect(page.get_by_role("alert")).to_contain_text("start = '19h7'")
    expect(page.get_by_label("Tên buổi")).to_have_value("Tối")
    expect(page.get_by_label("Độ dài (phút: 15, 45, hoặc 1h30m)")).to_have_value("20")
    page.get_by_label("Bắt đầu (HH:MM)").fill("19:00")
    page.get_by_role("button", name="Thêm buổi").click()
    expect(page.get_by_role("status")).to_contain_text("Đã thêm buổi Tối")
    # The ward's own session replaces its kind's; its items move on into it.
    expect(sessions).to_contain_text("của riêng đơn vị")
    expect(sessions).not_to_contain_text("Sáng")
    expect(page.get_by_role("status")).to_contain_text("chuyển sang buổi 'Tối' 19:00")

    # A holiday on Monday: Monday's items go on to the next sessions with room (Tuesday's
    # holds C already: A fits beside it, B goes to Wednesday).
    page.get_by_label("Ngày (dd/mm/yyyy)").fill(date_text(MONDAY))
    page.get_by_label("Ghi chú (vd: Quốc khánh)").fill("Nghỉ lễ")
    page.get_by_role("button", name="Ghi", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(
        f"nghỉ mọi buổi phát ngày {date_text(MONDAY)}"
    )
    page.goto(f"/sessions?unit={CUA_NAM}&start={date_text(MONDAY)}&days=7")
    first = page.locator("section.session").first
    expect(first).to_contain_text(f"Tối · Thứ ba {date_text(MONDAY + timedelta(days=1))} 19:00")
    expect(first.locator("li")).to_have_count(2)
    expect(first).to_contain_text("còn 0 giây")
    second = page.locator("section.session").nth(1)
    expect(second).to_contain_text(f"Thứ tư {date_text(MONDAY + timedelta(days=2))}")
    expect(second).to_contain_text("Tin B")
    assert_fits_phone(page)
    screenshot(page, "buoi-phat-phone", full_page=True)


def test_an_editor_queues_an_item_into_the_sessions_from_the_schedule_form(
    coso: CosoServer, new_page
) -> None:
    page: Page = signed_in(new_page(coso.url, "phone"), EDITOR)
    page.goto(f"/plans/{NUMBER}/schedules/new")

    def fill(name: str, content: str, length: str) -> None:
        page.get_by_label("Tên lịch").fill(name)
        page.get_by_label("Nội dung").select_option(content)
        page.get_by_label("Kênh").select_option("station")
        page.get_by_label("Đơn vị (mã, cách nhau bởi dấu cách)").fill(HOAN_KIEM)
        page.get_by_label("Xếp vào buổi phát").check()
        page.get_by_label("Từ ngày (dd/mm/yyyy)").fill(date_text(MONDAY))
        page.get_by_label("Đến ngày (không bắt buộc)").fill(date_text(MONDAY))
        page.get_by_label("Độ dài tin khi không có tệp âm thanh").fill(length)
        page.get_by_role("button", name="Thêm lịch").click()

    # Hoàn Kiếm's Monday: Sáng full (A, B), Chiều 5 minutes left (C): D's 10 do not fit.
    fill("Phát Tin D", "tin-d", "10")
    refused = page.get_by_role("alert")
    expect(refused).to_contain_text("'Tin D' (10 phút)")
    expect(refused).to_contain_text(f"buổi 'Chiều' 17:00 ngày {date_text(MONDAY)}")
    expect(refused).to_contain_text("chỉ còn 5 phút")
    expect(page.get_by_label("Xếp vào buổi phát")).to_be_checked()
    assert_fits_phone(page)
    screenshot(page, "xep-vao-buoi-phat-phone", full_page=True)
    fill("Phát Tin E", "tin-e", "5")
    expect(page).to_have_url(f"{coso.url}/plans/{NUMBER}#lich")
    page.goto(f"/sessions?unit={HOAN_KIEM}&start={date_text(MONDAY)}&days=1")
    evening = page.locator("section.session", has_text="Chiều")
    expect(evening.locator("li")).to_have_count(2)
    expect(evening.locator("li").nth(1)).to_contain_text("Tin E")
    expect(evening).to_contain_text("còn 0 giây")
