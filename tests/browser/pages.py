"""The browser the tests drive (Debian's chromium through Playwright, never a browser that
Playwright downloads) and what they check on a page: it fits a phone, it loaded nothing
from outside coso, and its screenshot for the docs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.fault_services import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

VIEWPORTS: dict[str, dict[str, Any]] = {
    # A common Android/iPhone size; pages must be usable there (commune operators).
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1366, "height": 900}},
}
IMAGES = ROOT / "docs" / "images"
SCREENSHOTS = "COSO_SCREENSHOTS"  # =1: screenshot() writes docs/images/<name>.png
CHROMIUM = "COSO_CHROMIUM"  # another chromium binary than the one on PATH
TIMEOUT_MS = 15_000  # for one wait on a page (two cores, several processes)
MISSING_CHROMIUM = (
    "the browser tests need Debian's chromium, which is not installed: "
    "`sudo apt-get install chromium` (`make test` installs it when run as root), "
    f"or set {CHROMIUM} to a chromium binary"
)
MISSING_PLAYWRIGHT = (
    "the browser tests need the playwright package: `.venv/bin/pip install -e '.[test]'` "
    "(`make test` does it); never `playwright install`, they drive Debian's chromium"
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LOCAL_SCHEMES = {"data", "blob", "about"}  # nothing fetched from anywhere


def chromium_path() -> str:
    """Debian's chromium, or $COSO_CHROMIUM; fails the test saying what to install."""
    chosen = os.environ.get(CHROMIUM)
    if chosen and not Path(chosen).is_file():
        pytest.fail(f"{CHROMIUM}={chosen}: no such file", pytrace=False)
    path = chosen or shutil.which("chromium")
    if not path:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    return path


def launch(playwright: Any) -> Browser:
    return playwright.chromium.launch(  # type: ignore[no-any-return]
        executable_path=chromium_path(),
        headless=True,
        # No calls home from the browser itself (updates, translation, metrics).
        args=["--disable-background-networking", "--disable-component-update"],
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme (ws as http), host and port: a WebSocket to coso is coso."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, parts.hostname or "", port


class RequestLog:
    """Every address a browser context asked for; those not on coso's origin are refused
    (so a page that reaches for a CDN fails here, not by hanging on a machine offline)."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.origin = _origin(base_url)
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        context.route(self.is_outside, lambda route: route.abort("blockedbyclient"))

    def watch(self, page: Page) -> None:
        page.on("websocket", lambda socket: self.urls.append(socket.url))

    def is_outside(self, url: str) -> bool:
        return urlsplit(url).scheme not in _LOCAL_SCHEMES and _origin(url) != self.origin

    @property
    def outside(self) -> list[str]:
        return [url for url in self.urls if self.is_outside(url)]


_LOGS: dict[int, RequestLog] = {}  # id(page) → its context's log, while the page is open


def open_page(browser: Browser, base_url: str, size: str) -> tuple[Page, RequestLog]:
    """A page in a fresh context (its own cookies: one user each), Vietnamese and in Việt
    Nam's time zone, at `size` ("phone" or "desktop"), relative URLs on `base_url`."""
    if size not in VIEWPORTS:
        raise ValueError(f"size {size!r}: one of {', '.join(VIEWPORTS)}")
    context = browser.new_context(
        base_url=base_url,
        locale="vi-VN",
        timezone_id="Asia/Ho_Chi_Minh",
        **VIEWPORTS[size],
    )
    context.set_default_timeout(TIMEOUT_MS)
    log = RequestLog(context, base_url)
    page = context.new_page()
    log.watch(page)
    _LOGS[id(page)] = log
    return page, log


def forget(page: Page) -> None:
    _LOGS.pop(id(page), None)


def assert_nothing_from_outside(page: Page) -> None:
    """Everything the page asked for (documents, scripts, styles, fonts, images, fetches,
    WebSockets) came from the coso server it was opened on."""
    log = _LOGS[id(page)]
    outside = log.outside
    assert not outside, f"the page asked for {len(outside)} address(es) outside coso: {outside}"


# On a phone (is_mobile), content wider than the screen widens window.innerWidth with it
# (the browser zooms out), so the width to hold is the layout viewport's: clientWidth.
_LAYOUT = """() => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const meta = document.querySelector('meta[name="viewport"]');
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && box.width > 0) {
      const id = el.id ? '#' + el.id : '';
      const cls = el.classList.length ? '.' + [...el.classList].join('.') : '';
      wide.push(`${el.tagName.toLowerCase()}${id}${cls} (right edge ${Math.round(box.right)})`);
    }
  }
  return {
    viewport: meta ? meta.content : null, width, scroll: root.scrollWidth, wide: wide.slice(0, 5)
  };
}"""


def assert_fits_phone(page: Page) -> None:
    """At 390 px the page lays itself out at the phone's width (it declares the viewport)
    and nothing makes it scroll sideways; a failure names the elements that stick out."""
    size = page.viewport_size
    assert size is not None and size["width"] == 390, f"not a phone-sized page: {size}"
    found = page.evaluate(_LAYOUT)
    assert "width=device-width" in (found["viewport"] or ""), (
        f"viewport {found['viewport']!r}: a phone shows the page zoomed out without "
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
    )
    assert found["scroll"] <= found["width"], (
        f"the page is {found['scroll']} px wide on a {found['width']} px phone; "
        f"sticking out: {found['wide']}"
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path | None:
    """docs/images/<name>.png of what the page shows, only when $COSO_SCREENSHOTS is 1 (so
    that ordinary runs leave the repository's images alone); the path written, or None."""
    if not _NAME.match(name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits and '-'")
    if os.environ.get(SCREENSHOTS) != "1":
        return None
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    page.screenshot(path=path, full_page=full_page, animations="disabled", caret="hide")
    return path
