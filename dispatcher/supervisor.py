"""Liveness: the database probe, and the supervisor that starts again a part of `coso serve`
that died or got stuck (a sender loop, the timer, a channel service's part), logging each
restart. What a part is and how it is restarted is the dispatcher's and each channel's."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine, text

from channels.host import Part

log = logging.getLogger(__name__)
SUPERVISE_EVERY = 2.0  # seconds between looks at every part
DATABASE_TIMEOUT = 5.0  # seconds for the database to answer SELECT 1
RESTART_BACKOFF = (2.0, 60.0)  # seconds before a part that keeps dying is restarted again


class Supervised(Protocol):
    def health(self) -> list[Part]: ...

    def restart(self, part: str) -> None: ...


class DatabaseProbe:
    """SELECT 1 within a timeout, on a thread of its own: a database that hangs makes the
    probe report it, never the caller wait. One probe at a time."""

    def __init__(self, engine: Engine, timeout: float = DATABASE_TIMEOUT) -> None:
        self.engine, self.timeout = engine, timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-probe")
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._since = 0.0
        self._seen: datetime | None = None

    def check(self) -> Part:
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = self._pool.submit(self._select_one)
                self._since = time.monotonic()
            pending, since = self._pending, self._since
        left = self.timeout - (time.monotonic() - since)
        try:
            pending.result(timeout=max(0.0, left))
        except FutureTimeout:
            waited = time.monotonic() - since
            return Part("database", False, f"no answer to SELECT 1 for {waited:.0f}s", self._seen)
        except Exception as exc:
            return Part("database", False, f"{type(exc).__name__}: {exc}"[:200], self._seen)
        self._seen = datetime.now(UTC)
        return Part("database", True, f"{self.engine.dialect.name} answers", self._seen)

    def _select_one(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Supervisor:
    """Every few seconds, restart each part that is not ok and can be restarted; a part that
    keeps failing waits longer each time (2 s doubling to a minute)."""

    def __init__(self, target: Supervised, every: float = SUPERVISE_EVERY) -> None:
        self.target, self.every = target, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._next: dict[str, tuple[float, float]] = {}  # part → (not before, next delay)
        self.round_at = time.monotonic()

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)

    @property
    def alive(self) -> bool:
        late = time.monotonic() - self.round_at
        return self._thread.is_alive() and late < max(30.0, 10 * self.every)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.supervise()
            except Exception:
                log.exception("supervising failed; looking again shortly")
            self.round_at = time.monotonic()

    def supervise(self) -> list[str]:
        """One look: the parts restarted."""
        restarted = []
        now = time.monotonic()
        for part in self.target.health():
            if part.ok:
                self._next.pop(part.name, None)
                continue
            if not part.restartable or self._stop.is_set():
                continue
            not_before, delay = self._next.get(part.name, (0.0, RESTART_BACKOFF[0]))
            if now < not_before:
                continue
            log.warning("%s: %s; starting it again", part.name, part.detail)
            try:
                self.target.restart(part.name)
            except Exception:
                log.exception("%s could not be started again; trying later", part.name)
            self._next[part.name] = (now + delay, min(delay * 2, RESTART_BACKOFF[1]))
            restarted.append(part.name)
        return restarted
