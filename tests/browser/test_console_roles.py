"""Who may open what, in a real browser signed in as each role: a table of routes × units
(pages, JSON routes and downloads) answering 200 or 403, and no citizen's phone number on
any page a viewer can open."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.console import add_user, module_server, signed_in
from tests.browser.server import CosoServer
from tests.plans import FOREST_PLAN, SMS_REMINDER_PLAN, write_plan
from tests.sms import ACCOUNT_SID, AUTH_TOKEN

A, B = "/plans/12/KH-UBND", "/plans/7/KH-UBND"
USERS = {  # login → (role, units)
    "quan-tri": ("administrator", []),
    "bien-tap": ("editor", ["20"]),
    "phe-duyet": ("approver", ["20"]),
    "van-hanh-a": ("operator", ["06040"]),
    "van-hanh-b": ("operator", ["06112"]),
    "xem-a": ("viewer", ["06040"]),
    "xem-b": ("viewer", ["06112"]),
}
IN_A = {"quan-tri", "bien-tap", "phe-duyet", "van-hanh-a", "xem-a"}
IN_B = {"quan-tri", "bien-tap", "phe-duyet", "van-hanh-b", "xem-b"}
ROUTES: dict[str, set[str]] = {  # route → who gets 200; every other signed-in user gets 403
    A: IN_A,
    A + ".json": IN_A,
    A + "/log.csv": IN_A,
    A + "/preview": IN_A,
    B: IN_B,
    B + ".json": IN_B,
    B + "/log.csv": IN_B,
    "/units/06040/today": IN_A,
    "/units/06040/today.json": IN_A,
    "/units/06112/today": IN_B,
    "/devices?unit=06040": IN_A,
    "/sessions?unit=06040": IN_A,
    "/sessions?unit=06112": IN_B,
    "/devices.json?unit=06112": IN_B,
    A + "/details": {"quan-tri", "bien-tap"},
    A + "/schedules/new": {"quan-tri", "bien-tap"},
    "/plans/new": {"quan-tri", "bien-tap"},
    "/users": {"quan-tri"},
}
PHONE = re.compile(r"\+?84\s?9\d{2}\s?\d{3}\s?\d{3}|0912\s?345\s?678")


@pytest.fixture(scope="module")
def coso(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[CosoServer]:
    sms = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "base_url": "http://127.0.0.1:9",  # nothing is sent: the plans are of 2021
        "sender": "UBND",
    }
    with module_server(
        tmp_path_factory, sqlite_template, {"channels": {"sms": sms}}, start=False
    ) as server:
        folder = tmp_path_factory.mktemp("plans")
        for name, text in (("a.toml", SMS_REMINDER_PLAN), ("b.toml", FOREST_PLAN)):
            server.cli("plan", "import", str(write_plan(folder, text, name=name)))
        for login, (role, units) in USERS.items():
            add_user(server, login, login, role, units)
        yield server.start()


def test_each_role_gets_200_on_its_units_and_403_elsewhere(
    coso: CosoServer, new_page: Callable[..., Page]
) -> None:
    answers, expected = {}, {}
    for login in USERS:
        page = signed_in(new_page(coso.url, size="phone"), login)
        for route, allowed in ROUTES.items():
            answers[(login, route)] = page.request.get(route, max_redirects=0).status
            expected[(login, route)] = 200 if login in allowed else 403
        page.context.close()
    assert answers == expected


def test_a_viewer_sees_no_phone_number_on_any_page(
    coso: CosoServer, new_page: Callable[..., Page]
) -> None:
    page = signed_in(new_page(coso.url, size="desktop"), "xem-a")
    for route in ("/", A, A + "/preview", "/units/06040/today", "/devices?unit=06040"):
        page.goto(route)
        text = page.content()
        assert not PHONE.search(text), (route, PHONE.search(text))
    for route in (A + ".json", A + "/log.csv", "/devices.json?unit=06040"):
        body = page.request.get(route).text()
        assert not PHONE.search(body), (route, PHONE.search(body))
    # The same device list shows an editor the number (they send SMS).
    editor = signed_in(new_page(coso.url, size="desktop"), "bien-tap")
    assert "+84912345678" in editor.request.get("/devices.json?unit=06040").text()
