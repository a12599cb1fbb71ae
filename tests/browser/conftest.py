"""Fixtures for tests through a real browser: Playwright driving Debian's `chromium`
against a real `coso serve`.

Every test in this folder is marked `browser` (`pytest -m browser` runs them alone,
`-m "not browser"` leaves them out); `make test` runs them with the rest.

What a test gets:

- `coso_server(settings=None, env=None, start=True)`: a `CosoServer`
  (tests/browser/server.py), a `coso serve` process of its own on a free port, with its own
  settings file (SQLite in the test's tmp folder, already migrated with the units loaded;
  its own media folder; the machine's MQTT broker at 127.0.0.1:1883 when it answers, else
  the one `coso serve` starts, under a topic prefix of its own). `settings` is laid over
  those, table by table, e.g. `{"timer": {"reconcile_every": "1s"}}`; `env` adds COSO_*
  variables (a secret from the environment, say) to the server and its command line.
  `start=False` leaves it stopped, to prepare the database first; then `server.start()`
  waits until /healthz answers. Stopped at the end. `server.url`, `server.config` (the
  settings file), `server.log_tail()` (its output), and `server.cli("plan", "import",
  str(path))`: the `coso` command line on the same settings in a process of its own,
  returning its output (a non-zero exit fails the test; `stdin=` answers its prompts).
- `server`: `coso_server()` with the defaults, started.
- `browser`: chromium, headless, launched once for the whole run of this folder.
- `new_page(base_url, size="desktop")`: a page in a fresh browser context (own cookies, so
  two users can be logged in at once), `size` "phone" (390×844, mobile, touch) or "desktop"
  (1366×900), Vietnamese locale and Asia/Ho_Chi_Minh time zone, relative URLs on
  `base_url` (`page.goto("/bulletin")`). Anything it asks for outside `base_url`'s origin
  is refused, and at the end the test fails if there was any.

Helpers to import from tests.browser.pages: `assert_fits_phone(page)` (no sideways scroll
at 390 px, and the page declares the viewport), `assert_nothing_from_outside(page)`, and
`screenshot(page, name, full_page=False)`, which writes docs/images/<name>.png only when
COSO_SCREENSHOTS=1.

A console test reads:

    from playwright.sync_api import expect
    from tests.browser.pages import assert_fits_phone, screenshot

    def test_operator_confirms_a_broadcast_on_a_phone(coso_server, new_page, tmp_path):
        coso = coso_server({"timer": {"reconcile_every": "1s"}})
        coso.cli("plan", "import", str(write_plan(tmp_path, PLAN)))
        coso.cli("users", "add", ...)
        page = new_page(coso.url, "phone")
        page.goto("/login")
        page.get_by_label("Tên đăng nhập").fill(...)
        ...
        page.get_by_role("button", name="Xác nhận đã phát").click()
        expect(page.get_by_text("đã xác nhận")).to_be_visible()
        assert_fits_phone(page)
        screenshot(page, "hom-nay-phone")

A slot fires only if it falls after the import that made it (a schedule fires from its
import on): for a broadcast now, import a schedule starting a few seconds ahead, with a
short `reconcile_every`, as test_bulletin.py's `import_for_a_near_slot` does (it imports
again with more room when a slow import overtook the slot).

Chromium is never downloaded (no `playwright install`): a missing chromium fails these
tests with what to install; $COSO_CHROMIUM points at another binary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.pages import (
    MISSING_PLAYWRIGHT,
    assert_nothing_from_outside,
    forget,
    launch,
    open_page,
)
from tests.browser.server import CosoServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def coso_server(tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., CosoServer]]:
    servers: list[CosoServer] = []

    def make(
        settings: dict[str, Any] | None = None,
        *,
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> CosoServer:
        work = tmp_path / f"coso-{len(servers) + 1}"
        server = CosoServer(work, sqlite_template, settings, env)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(coso_server: Callable[..., CosoServer]) -> CosoServer:
    return coso_server()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(MISSING_PLAYWRIGHT, pytrace=False)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    opened: list[Page] = []

    def make(base_url: str, size: str = "desktop") -> Page:
        page, _ = open_page(browser, base_url, size)
        opened.append(page)
        return page

    yield make
    try:
        for page in opened:
            assert_nothing_from_outside(page)
    finally:
        for page in opened:
            forget(page)
            page.context.close()
