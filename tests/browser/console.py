"""What the console's browser tests share: a `coso serve` kept for a whole test module,
accounts made with `coso users add`, signing in on a page, plans imported for a slot a few
seconds ahead, and waiting for a page to show what the service has done since."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from coso.clock import as_utc
from coso.db import make_engine
from schedules.models import Plan, Schedule
from tests.browser.server import CosoServer
from tests.loudspeakers import slot_in
from tests.plans import write_plan

PASSWORD = "mật-khẩu-đủ-dài-2021"
SESSION_SECRET = "browser-tests-session-key-0123456789"
FIRST_ROOM = 6  # seconds between writing a slot and the slot; an import takes 2 to 4
LOGIN_ERROR = "Sai tên đăng nhập hoặc mật khẩu"


@contextmanager
def module_server(
    factory: pytest.TempPathFactory,
    template: Path,
    settings: dict[str, Any] | None = None,
    *,
    start: bool = True,
) -> Iterator[CosoServer]:
    """A `coso serve` for the tests of one module (those that do not get in each other's
    way: each its own communes and plans), with a console key of its own."""
    server = CosoServer(
        factory.mktemp("coso"),
        template,
        {"console": {"session_secret": SESSION_SECRET}, **(settings or {})},
    )
    try:
        yield server.start() if start else server
    finally:
        server.stop()


def add_user(
    coso: CosoServer,
    login: str,
    name: str,
    role: str,
    units: list[str],
    *,
    phone: str | None = None,
    password: str = PASSWORD,
) -> None:
    """An account, as an administrator makes one: `coso users add … --password-stdin`."""
    args = ["users", "add", login, "--name", name, "--role", role, "--password-stdin"]
    for unit in units:
        args += ["--unit", unit]
    if phone:
        args += ["--phone", phone]
    coso.cli(*args, stdin=password + "\n")


def log_in(page: Page, login: str, password: str = PASSWORD) -> None:
    """Fill the login form and send it, as a person does (no check of the outcome)."""
    if "/login" not in page.url:
        page.goto("/login")
    page.get_by_label("Tên đăng nhập").fill(login)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def signed_in(page: Page, login: str, password: str = PASSWORD) -> Page:
    """`page` signed in as `login`, on the page the console shows first."""
    log_in(page, login, password)
    expect(page.get_by_role("button", name="Đăng xuất")).to_be_visible()
    return page


def import_near_slot(
    coso: CosoServer,
    tmp_path: Path,
    plan_text: Callable[[str, datetime], str],
    numbers: list[str],
    room: int = FIRST_ROOM,
) -> tuple[str, datetime]:
    """Import `plan_text(number, slot)` with `coso plan import`, its slot a few seconds
    ahead; the plan's number and slot. A schedule fires from its import on, so a slot that
    a slow import overtook never fires (nor shows on any page): then the next number, with
    twice the room."""
    for number in numbers:
        slot = slot_in(room)
        name = number.replace("/", "-")
        coso.cli("plan", "import", str(write_plan(tmp_path, plan_text(number, slot), name=name)))
        # Fired up to the slot itself: fired ahead of it (a cued channel's), not overtaken.
        if all(fired <= slot for fired in fired_through(coso, number)):
            return number, slot
        room *= 2
    raise AssertionError(f"{len(numbers)} imports each took longer than the room given")


def fired_through(coso: CosoServer, number: str) -> list[datetime]:
    """For each schedule of the plan, the time up to which it counts as fired: the moment
    of its import (a slot at or before it never fires)."""
    engine = make_engine(coso.settings["database"]["url"])
    S, P = Schedule.__table__, Plan.__table__
    try:
        with engine.connect() as conn:
            found = conn.scalars(
                select(S.c.fired_through).join(P, P.c.id == S.c.plan_id).where(P.c.number == number)
            ).all()
    finally:
        engine.dispose()
    assert found, f"plan {number} has no schedule"
    return [as_utc(at) for at in found]


def reload_until(page: Page, shown: Locator, what: str, timeout: float = 60.0) -> None:
    """Reload `page` until `shown` is visible on it (what the service does in the meantime
    shows on a page only when it is loaded again, as for a person pulling to refresh)."""
    deadline = time.monotonic() + timeout
    while not (shown.count() and shown.first.is_visible()):
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s {page.url} still does not show {what}")
        time.sleep(0.5)
        page.reload()


def station_task(page: Page, title: str) -> Locator:
    """The task on a "Hôm nay" page whose item is `title`."""
    return page.locator("article.task", has=page.get_by_role("heading", name=title))


def section_table(page: Page, heading: str) -> Locator:
    """The table under a page's heading (by markup: on a phone, some tables are shown as
    one card per row, without their header row)."""
    return page.locator(f"h2:text-is('{heading}') + .scroll table")


def count_row(page: Page, channel: str, state: str) -> Locator:
    """The row of the plan page's "Kết quả gửi" for a channel and state (their Vietnamese
    names): its last cell is the count."""
    rows = section_table(page, "Kết quả gửi").locator("tr")
    return rows.filter(has_text=channel).filter(has_text=state)


def log_rows(page: Page, event: str) -> Locator:
    """The rows of the plan page's activity log with this event (its Vietnamese name); the
    cells: time, event, unit, endpoint, channel, by whom, note."""
    rows = section_table(page, "Nhật ký hoạt động").locator("tr")
    return rows.filter(has=page.locator(f"td:nth-child(2):text-is('{event}')"))
