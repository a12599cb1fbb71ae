"""Logging in to the console in a real browser, against one `coso serve` for the module: a
wrong password is refused in Vietnamese, guessing is slowed, a form without its CSRF token
is refused, and a session cookie signed by another coso is no session."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser.console import (
    LOGIN_ERROR,
    PASSWORD,
    add_user,
    log_in,
    module_server,
    signed_in,
)
from tests.browser.pages import assert_fits_phone
from tests.browser.server import CosoServer

# The same account (the first made, so the same id) on this server and on another one.
OPERATOR = "vanhanh-thatkhe"
GUESSED = "vanhanh-trangdinh"  # someone tries passwords for this one
EDITOR = "bientap-langson"
COOKIE = "coso_session"


@pytest.fixture(scope="module")
def coso(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[CosoServer]:
    with module_server(tmp_path_factory, sqlite_template, start=False) as server:
        add_user(server, OPERATOR, "Hoàng Thị Mai", "operator", ["06040"])
        add_user(server, GUESSED, "Lã Văn Tiến", "operator", ["06046"])
        add_user(server, EDITOR, "Trung tâm Văn hóa tỉnh", "editor", ["20"])
        yield server.start()


def _is_login(response: Response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/login")


def test_a_wrong_password_is_refused_with_a_message_in_vietnamese(
    coso: CosoServer, new_page: Callable[..., Page]
) -> None:
    page = new_page(coso.url, "phone")
    page.goto("/login")
    assert_fits_phone(page)
    with page.expect_response(_is_login) as answer:
        log_in(page, OPERATOR, "mat-khau-sai-roi")
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text(
        "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khóa."
    )
    assert_fits_phone(page)
    page.goto("/units/06040/today")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Funits%2F06040%2Ftoday$"))

    log_in(page, OPERATOR)  # the right one: on to the page asked for
    expect(page.get_by_role("heading", name="Hôm nay · Xã Thất Khê")).to_be_visible()


def test_guessing_a_password_is_slowed_even_for_the_right_one(
    coso: CosoServer, new_page: Callable[..., Page]
) -> None:
    page = new_page(coso.url, "phone")
    page.goto("/login")
    for attempt in range(5):  # [console] login_attempts
        log_in(page, GUESSED, f"doan-mat-khau-{attempt}")
        expect(page.get_by_role("alert")).to_contain_text(LOGIN_ERROR)
    with page.expect_response(_is_login) as answer:
        log_in(page, GUESSED)  # the right password, too soon after
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) > 0
    expect(page.get_by_role("alert")).to_contain_text("Đăng nhập sai quá nhiều lần")
    expect(page.get_by_role("alert")).to_contain_text("thử lại sau")
    expect(page.get_by_role("button", name="Đăng xuất")).to_have_count(0)
    assert_fits_phone(page)

    # Someone else, from the same address, is not held up.
    signed_in(new_page(coso.url, "phone"), OPERATOR)


NEW_PLAN = {
    "number": "61/KH-UBND",
    "title": "Tuyên truyền an toàn giao thông",
    "period_start": "01/01/2027",
    "period_end": "31/12/2027",
    "target_channel": "station",
    "target_count": "2",
    "target_per": "week",
    "target_units": "20",
}
POST_FROM_THE_PAGE = """async (fields) => {
  const answer = await fetch('/plans/new', {
    method: 'POST', body: new URLSearchParams(fields), redirect: 'manual'});
  return {status: answer.status, text: await answer.text()};
}"""


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    coso: CosoServer, new_page: Callable[..., Page]
) -> None:
    page = signed_in(new_page(coso.url), EDITOR)
    page.goto("/plans/new")
    without = page.evaluate(POST_FROM_THE_PAGE, NEW_PLAN)
    assert without["status"] == 403
    assert "CSRF" in without["text"]
    elsewhere = signed_in(new_page(coso.url), EDITOR)  # the same person, another session
    stale = elsewhere.locator("input[name=csrf_token]").first.get_attribute("value")
    assert stale
    another = page.evaluate(POST_FROM_THE_PAGE, {**NEW_PLAN, "csrf_token": stale})
    assert another["status"] == 403
    nothing = page.goto(f"/plans/{NEW_PLAN['number']}")
    assert nothing is not None and nothing.status == 404

    # The form itself carries its token: the same plan is made.
    page.goto("/plans/new")
    page.get_by_label("Số kế hoạch").fill(NEW_PLAN["number"])
    page.get_by_label("Tên", exact=True).fill(NEW_PLAN["title"])
    page.get_by_label("Từ ngày").fill(NEW_PLAN["period_start"])
    page.get_by_label("Đến ngày").fill(NEW_PLAN["period_end"])
    page.get_by_label("Kênh").select_option("station")
    page.get_by_label("Số lần").fill(NEW_PLAN["target_count"])
    page.get_by_label("Ở các đơn vị").fill(NEW_PLAN["target_units"])
    page.get_by_role("button", name="Tạo").click()
    expect(page.get_by_role("heading", name=NEW_PLAN["number"])).to_be_visible()
    expect(page.get_by_text(NEW_PLAN["title"])).to_be_visible()


def _session_cookie(page: Page) -> str:
    found = [c["value"] for c in page.context.cookies() if c["name"] == COOKIE]
    assert len(found) == 1, f"{COOKIE} cookies: {found}"
    return found[0]


def _carrying(new_page: Callable[..., Page], url: str, value: str) -> Page:
    """A browser that never logged in, carrying a session cookie copied from elsewhere."""
    page = new_page(url, "phone")
    page.context.add_cookies([{"name": COOKIE, "value": value, "url": url}])
    return page


def test_a_session_cookie_signed_with_another_key_is_refused(
    coso: CosoServer, coso_server: Callable[..., CosoServer], new_page: Callable[..., Page]
) -> None:
    other = coso_server(
        {"console": {"session_secret": "another-coso-another-session-key"}}, start=False
    )
    add_user(other, OPERATOR, "Hoàng Thị Mai", "operator", ["06040"], password=PASSWORD)
    other.start()
    theirs = _session_cookie(signed_in(new_page(other.url), OPERATOR))
    ours = _session_cookie(signed_in(new_page(coso.url), OPERATOR))

    copied = _carrying(new_page, coso.url, ours)  # a copy of this coso's cookie is a session
    copied.goto("/units/06040/today")
    expect(copied.get_by_role("heading", name="Hôm nay · Xã Thất Khê")).to_be_visible()

    forged = _carrying(new_page, coso.url, theirs)  # same account and id, another key
    forged.goto("/units/06040/today")
    expect(forged).to_have_url(re.compile(r"/login\?next=%2Funits%2F06040%2Ftoday$"))
    expect(forged.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    answer = forged.request.get(f"{coso.url}/units/06040/today.json")
    assert answer.status == 401
