"""Logging in to the console: signed session cookies, a CSRF token per session, slowed
brute force, and the `signed_in` dependency every console route takes."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from sqlalchemy import Engine

from coso.access import Access, access_for
from coso.config import Settings
from coso.durations import parse_duration
from coso.secret_file import kept_secret
from coso.units import unit_tree
from coso.users import user_by_id

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_secret(settings: Settings) -> str:
    if settings.console.session_secret:
        return settings.console.session_secret
    return kept_secret(Path(settings.console.secret_file)).decode()


def session_cookie_options(settings: Settings) -> dict[str, Any]:
    """What SessionMiddleware needs: the key, the cookie's life, and https-only when coso
    is reached over https."""
    return {
        "secret_key": session_secret(settings),
        "session_cookie": "coso_session",
        "max_age": int(parse_duration(settings.console.session_max_age).total_seconds()),
        "same_site": "lax",
        "https_only": str(settings.server.public_url).startswith("https://"),
    }


class NotSignedIn(Exception):
    """No valid session: pages go to the login form, JSON answers 401."""


def csrf_token(request: Request) -> str:
    """This session's token for forms (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """A form or request that changes something must carry this session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        raise HTTPException(
            403, "Biểu mẫu thiếu mã chống giả mạo (CSRF) hoặc mã đã cũ: hãy tải lại trang."
        )


def sign_in(request: Request, user_id: int, epoch: int) -> None:
    """A new session for this user (a new token too: nothing from before the login stays)."""
    request.session.clear()
    request.session.update({"uid": user_id, "epoch": epoch})
    csrf_token(request)


def sign_out(request: Request) -> None:
    request.session.clear()


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith(".json")


def login_address(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only (never //elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def signed_in_dependency(engine: Engine) -> Any:
    """The dependency that gives a route the signed-in user's `Access`."""

    def signed_in(request: Request) -> Access:
        uid, epoch = request.session.get("uid"), request.session.get("epoch")
        if not isinstance(uid, int) or not isinstance(epoch, int):
            raise NotSignedIn
        user = user_by_id(engine, uid)
        if user is None or user.disabled or user.session_epoch != epoch:
            request.session.clear()
            raise NotSignedIn
        access = access_for(user, unit_tree(engine))
        request.state.access = access
        return access

    return signed_in


# A commune office or a district centre may have many people behind one address: an
# address gets this many times the failures a login name gets.
PER_ADDRESS = 4


@dataclass
class LoginThrottle:
    """Failed logins per login name and per client address within a sliding window; past
    `attempts` (for an address: PER_ADDRESS times that), the next one must wait until the
    oldest failure leaves the window."""

    attempts: int
    window: float
    clock: Any = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, *keys: str) -> float:
        """Seconds to wait before another attempt for any of these keys (0: go ahead)."""
        now = self.clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                seen = self._recent(key, now)
                limit = self.attempts * (PER_ADDRESS if key.startswith("address:") else 1)
                if len(seen) >= limit:
                    longest = max(longest, seen[0] + self.window - now)
        return longest

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, login_key: str) -> None:
        with self._lock:
            self._failures.pop(login_key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(key, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(self._failures) > 100_000:  # a flood of made-up names must not fill memory
            self._failures = {k: v for k, v in self._failures.items() if v}
        return seen


def throttle_for(settings: Settings) -> LoginThrottle:
    return LoginThrottle(
        settings.console.login_attempts,
        parse_duration(settings.console.login_window).total_seconds(),
    )
