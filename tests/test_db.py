"""The database layer: SQLite writers of one process queue in order, and times passed as
JSON are stored as the column type stores them."""

from __future__ import annotations

import threading

from coso.db import FairLock
from tests.helpers import wait_for


def test_writers_get_the_write_lock_in_the_order_they_asked() -> None:
    lock = FairLock()
    assert lock.acquire()
    order: list[int] = []

    def writer(n: int) -> None:
        assert lock.acquire(timeout=10)
        order.append(n)
        lock.release()

    threads = []
    for n in range(6):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=n: lock.waiting == n + 1, 5, f"writer {n} to queue")
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_writer_that_gives_up_waiting_leaves_the_lock_to_the_next() -> None:
    lock = FairLock()
    assert lock.acquire()
    assert not lock.acquire(timeout=0.05)  # gave up
    assert lock.waiting == 0
    lock.release()
    assert lock.acquire(timeout=1)


def test_times_passed_as_json_are_stored_as_the_column_type_stores_them() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from coso.db import sqlite_time
    from dispatcher.models import Delivery

    column = Delivery.__table__.c.updated_at.type.dialect_impl(sqlite.dialect())
    stored = column.bind_processor(sqlite.dialect())
    hanoi = timezone(timedelta(hours=7))
    for when in (
        datetime(2021, 5, 3, 6, 0, tzinfo=hanoi),  # no microseconds, not UTC
        datetime(2026, 11, 24, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC),
    ):
        assert sqlite_time(when) == stored(when)
    assert sqlite_time(None) is None
