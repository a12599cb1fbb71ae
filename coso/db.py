"""Database engine (SQLite WAL by default, PostgreSQL via psycopg 3) and schema migrations."""

from __future__ import annotations

import ast
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from coso.errors import InputError

try:
    import fcntl
except ImportError:  # not on Windows: one process per database there
    fcntl = None  # type: ignore[assignment]

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
WRITE_QUEUE_TIMEOUT = 30.0  # seconds; then SQLite's own busy_timeout decides


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for any other database, and for one that
    lives in memory (which no other process can open)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def check_sqlite_file(file: Path) -> None:
    """Refuse, naming it, a file that exists but is not a SQLite database (a text file, an
    image): SQLite would fail on it later with a traceback."""
    try:
        with file.open("rb") as opened:
            header = opened.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # created when first opened
    except IsADirectoryError as exc:
        raise InputError("database.url", str(file), "is a folder, not a database file") from exc
    except OSError as exc:
        raise InputError("database.url", str(file), f"cannot be read: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise InputError("database.url", str(file), "this file is not a SQLite database")


def shared_between_processes(url: str) -> bool:
    """Can another process open this database (PostgreSQL, a SQLite file)?"""
    return make_url(url).get_backend_name() != "sqlite" or sqlite_file(url) is not None


def make_engine(url: str, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        file = sqlite_file(url)
        if file is not None:
            check_sqlite_file(file)
        engine = create_engine(parsed, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        writers = _WriteLock(Path(f"{file}.write-lock") if file is not None else None)
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.commit)
        event.listen(engine, "rollback", writers.rollback)
        return engine
    return create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=10)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions begin in the "begin" hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class FairLock:
    """A lock handed to its waiters in the order they came (threading.Lock is not: a thread
    that releases and at once acquires again can starve the others)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self, timeout: float = -1) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=timeout):
            return True  # handed over by release()
        with self._mutex:
            try:
                self._waiters.remove(turn)
                return False
            except ValueError:
                return True  # handed over just as the wait timed out: ours after all

    @property
    def waiting(self) -> int:
        """How many are queued for the lock."""
        with self._mutex:
            return len(self._waiters)

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # stays held, by the next in line
            else:
                self._held = False


class _WriteLock:
    """SQLite has one writer at a time. A write transaction takes the write lock at BEGIN
    (a deferred one that reads first and writes later fails at once, not after
    busy_timeout, when another writer committed). Writers of this process also queue, in
    order, on a lock of their own: the next one starts the moment the last commits, instead
    of sleeping in SQLite's busy handler (which polls every few to 100 ms). With `path`,
    the first in line also takes a lock file, which coso's other processes on the same
    database (player events) take too: the kernel wakes the next writer at once."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = FairLock()
        self._path = path if fcntl is not None else None
        self._file: Any = None

    def begin(self, conn: Connection) -> None:
        if not conn.get_execution_options().get("coso_write", False):
            conn.exec_driver_sql("BEGIN")
            return
        held = self._lock.acquire(timeout=WRITE_QUEUE_TIMEOUT)
        conn.info["coso_write_lock"] = held
        try:
            if held and self._path is not None:
                self._lock_file()
                conn.info["coso_write_file"] = True
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(conn)
            raise

    def _lock_file(self) -> None:
        if self._file is None:
            self._file = open(self._path, "a+b")  # noqa: SIM115 (kept open: the lock's fd)
        fcntl.flock(self._file, fcntl.LOCK_EX)  # releases the GIL while it waits

    def commit(self, conn: Connection) -> None:
        """SQLAlchemy signals a commit before making it: a write transaction commits here,
        so the next writer, let in below, finds the database free (the driver's own commit
        that follows has nothing left to do)."""
        self._finish(conn, "commit")

    def rollback(self, conn: Connection) -> None:
        self._finish(conn, "rollback")

    def _finish(self, conn: Connection, how: str) -> None:
        if "coso_write_lock" not in conn.info:
            return
        try:
            getattr(conn.connection.dbapi_connection, how)()
        finally:
            self.end(conn)

    def end(self, conn: Connection) -> None:
        if conn.info.pop("coso_write_file", False):
            fcntl.flock(self._file, fcntl.LOCK_UN)
        if conn.info.pop("coso_write_lock", False):
            self._lock.release()


def writer(engine: Engine) -> Engine:
    """The engine for write transactions (and ORM sessions that write)."""
    return engine.execution_options(coso_write=True)


def write(engine: Engine) -> Any:
    """`with write(engine) as conn:` — one write transaction, committed at the end."""
    return writer(engine).begin()


def sqlite_time(when: datetime | None) -> str | None:
    """A time as coso's SQLite columns store it (UTC, 'YYYY-MM-DD HH:MM:SS.ffffff', what the
    column type would write), for statements that pass many rows as one JSON array."""
    if when is None:
        return None
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_ignoring_duplicates(bind: Engine | Connection, table: Table) -> Any:
    """INSERT that skips rows violating a unique constraint (the idempotency of fan-out)."""
    if bind.dialect.name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    if bind.dialect.name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    return insert(table)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    folders = [str(MIGRATIONS / "versions"), *channel_migration_folders()]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(folders))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def channel_migration_folders() -> list[str]:
    """The migration branch of every installed channel, found through the `coso.channels`
    entry points as the channel registry finds them, so that whoever opens a database
    migrates it whole (a branch left out would make its recorded head unknown)."""
    from coso.migrations import CHANNEL_FOLDERS
    from coso.plugins import channel_entry_points

    for found in channel_entry_points():
        try:
            folder = getattr(found.load(), "migrations", None)
        except Exception:  # the registry says why when it loads the channel
            continue
        if isinstance(folder, str) and folder not in CHANNEL_FOLDERS:
            CHANNEL_FOLDERS.append(folder)
    return list(CHANNEL_FOLDERS)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent). A database already at every
    branch's newest revision is left as it is without loading alembic, which a process
    would otherwise keep in memory for its whole life (about 8 MB, with its templates)."""
    folders = [MIGRATIONS / "versions", *map(Path, channel_migration_folders())]
    if recorded_revisions(engine) == newest_revisions(folders):
        return
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with write(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


PREPARE_KEY = 0x636F7370  # the advisory lock under which a process prepares the database


@contextmanager
def one_at_a_time(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, a session advisory lock held for the block, so processes started
    together (several dispatchers) migrate and load the units one after the other: the
    later ones find the work done. SQLite's writers wait for one another already."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PREPARE_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PREPARE_KEY})
            conn.commit()


def chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def recorded_revisions(engine: Engine) -> set[str]:
    """The revisions the database says it is at (none for a new database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return set(conn.scalars(text("SELECT version_num FROM alembic_version")))


def newest_revisions(folders: Sequence[Path]) -> set[str]:
    """The head of each branch of the migration scripts in `folders`: the revisions that no
    other names as the one it revises (read from each script's `revision` and
    `down_revision`, as alembic reads them, without running the scripts)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for folder in folders:
        for script in sorted(folder.glob("*.py")):
            names = _assigned(script)
            if isinstance(names.get("revision"), str):
                revisions.add(names["revision"])
                down = names.get("down_revision")
                revised.update([down] if isinstance(down, str) else down or ())
    return revisions - revised


def _assigned(script: Path) -> dict[str, Any]:
    """The constants a migration script assigns at its top level."""
    found: dict[str, Any] = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError):  # not a constant: not one of these names
                continue
    return found
