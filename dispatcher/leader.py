"""Locks that a live process holds and that die with it: which process runs the timer, and
that no two dispatchers run under one name.

PostgreSQL: a session advisory lock on a connection kept open. That connection asks the
server to probe it (TCP keepalives), so a holder whose machine vanished without closing its
connection loses the lock within about KEEPALIVE_SECONDS; a holder that was killed loses it
at once (its connection closes). SQLite: an flock on a file beside the database. Firing is
idempotent anyway; the timer lock keeps the work in one place.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import zlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)
LOCK_KEY = 0x636F736F  # "coso": the timer
NAMES_KEY = 0x636F736E  # with a name's checksum: a dispatcher's name
# The server probes the lock's connection after this many idle seconds, then every
# interval, and drops it after `count` unanswered probes.
KEEPALIVE = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
KEEPALIVE_SECONDS = KEEPALIVE["tcp_keepalives_idle"] + (
    KEEPALIVE["tcp_keepalives_interval"] * KEEPALIVE["tcp_keepalives_count"]
)


class ProcessLock:
    """Held by at most one process at a time, until it releases it or ends."""

    def __init__(self, engine: Engine, key: tuple[int, ...], file_suffix: str) -> None:
        """`key`: one bigint, or two int4 (PostgreSQL's two advisory lock spaces);
        `file_suffix`: the SQLite lock file is `<database>.<file_suffix>.lock`."""
        self.engine, self.key, self.file_suffix = engine, key, file_suffix
        self._conn: Any = None
        self._file: IO[bytes] | None = None
        self._alone = False  # a database no other process can open: always this one's
        self._lock = threading.Lock()  # the loop that checks it, and stop()

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None or self._alone

    def try_acquire(self) -> bool:
        with self._lock:
            if self.held:
                return True
            if self.engine.dialect.name == "postgresql":
                return self._try_advisory()
            database = self.engine.url.database
            if not database or database == ":memory:":
                self._alone = True
                return True
            path = Path(f"{database}.{self.file_suffix}.lock")
            handle = path.open("ab")  # held while this process holds the lock
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True

    def _try_advisory(self) -> bool:
        conn = self.engine.connect()
        try:
            for setting, value in KEEPALIVE.items():
                conn.execute(text(f"SET {setting} = {int(value)}"))
            if len(self.key) == 1:
                query = "SELECT pg_try_advisory_lock(CAST(:k0 AS bigint))"
            else:
                query = "SELECT pg_try_advisory_lock(CAST(:k0 AS integer), CAST(:k1 AS integer))"
            got = conn.execute(text(query), {f"k{i}": k for i, k in enumerate(self.key)}).scalar()
            conn.commit()
        except Exception:
            _drop(conn)
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return bool(got)

    def still_held(self) -> bool:
        """Whether the lock is still this process's. On PostgreSQL the lock lives as long as
        its connection: one that no longer answers means the server has let it go (or will),
        so it counts as lost, and the connection is dropped."""
        with self._lock:
            if self._file is not None or self._alone:
                return True
            if self._conn is None:
                return False
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except Exception as exc:
                log.warning("the connection holding a lock broke: %s", exc)
                _drop(self._conn)
                self._conn = None
                return False

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                _drop(self._conn)  # closed, never back to the pool: the lock goes with it
                self._conn = None
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
                self._file.close()
                self._file = None
            self._alone = False


class TimerLock(ProcessLock):
    """The timer runs in the process that holds this."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, (LOCK_KEY,), "timer")


class NameLock(ProcessLock):
    """Held by the dispatcher running under `name` ("" for an unnamed one)."""

    def __init__(self, engine: Engine, name: str) -> None:
        checksum = zlib.crc32(name.encode())
        signed = checksum - (1 << 32) if checksum >= 1 << 31 else checksum  # an int4
        super().__init__(engine, (NAMES_KEY, signed), f"dispatcher-{name or 'unnamed'}")
        self.name = name


def _drop(conn: Any) -> None:
    """Close a connection for good (not back to the pool)."""
    with contextlib.suppress(Exception):
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()
