"""Fan one occurrence out to N endpoints (deliveries + log entries), then insert the same rows
with the raw DB-API executemany on the same database; print both rates and their ratio.

    python -m bench.fanout --endpoints 100000 [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from channels.endpoints import add_endpoints
from coso.clock import ManualClock
from coso.config import load_settings
from coso.db import make_engine, migrate, write
from coso.units import load_current_units, resolve_unit_codes
from dispatcher.fanout import fan_out_pending
from dispatcher.models import ActivityEntry, Delivery
from schedules.firing import fire_due
from schedules.importer import import_plan
from schedules.models import Occurrence
from schedules.planfile import PlanFile

SLOT = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)


def prepare(engine: Engine, endpoints: int) -> None:
    migrate(engine)
    load_current_units(engine)
    communes = sorted(resolve_unit_codes(engine, ["20"])["20"] - {"20"})
    rows = [
        {
            "channel": "web",
            "address": f"bulletin:{communes[i % len(communes)]}-{i}",
            "unit_code": communes[i % len(communes)],
        }
        for i in range(endpoints)
    ]
    add_endpoints(engine, rows, SLOT - timedelta(days=1))
    plan = PlanFile.model_validate(
        {
            "plan": {
                "number": "BENCH/1",
                "title": "bench",
                "period_start": "2021-01-01",
                "period_end": "2021-12-31",
            },
            "content": [{"key": "c", "title": "t", "body": "b", "state": "approved"}],
            "schedules": [
                {
                    "name": "s",
                    "content": "c",
                    "channel": "web",
                    "targets": {"units": ["20"]},
                    "start": datetime(2021, 5, 3, 6, 0),
                }
            ],
        }
    )
    import_plan(engine, load_settings(None), plan, SLOT - timedelta(days=1))


def raw_insert(
    engine: Engine, deliveries: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> None:
    """The same rows through the driver's own executemany, one transaction."""
    sqlite = engine.dialect.name == "sqlite"
    mark = (lambda name: "?") if sqlite else (lambda name: "%s")

    def stamp(value: Any) -> Any:
        if sqlite and isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if sqlite:  # coso's connections run the sqlite3 module in autocommit mode
            cursor.execute("BEGIN")
        for table, rows in (("delivery", deliveries), ("activity_entry", entries)):
            columns = list(rows[0])
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join(mark(c) for c in columns)})"
            )
            cursor.executemany(sql, [tuple(stamp(r[c]) for c in columns) for r in rows])
        raw.commit()
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--batch", type=int, default=None, help="fan-out batch size")
    args = parser.parse_args()
    with scratch_database(args.database_url) as url:
        run(url, args.endpoints, args.batch)


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A new SQLite file, or a new database on the given PostgreSQL server, dropped after."""
    if server_url is None:
        yield f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
        return
    name = f"coso_bench_{os.getpid()}"
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, endpoints: int, batch_size: int | None) -> None:
    engine = make_engine(url)
    settings = load_settings(None, database={"url": url})
    batch = batch_size or settings.dispatcher.fanout_batch
    print(
        f"database: {engine.url.render_as_string(hide_password=True)}  endpoints: {endpoints}"
        f"  batch: {batch}"
    )
    prepare(engine, endpoints)
    clock = ManualClock(SLOT)
    fire_due(engine, clock.now())

    started = time.perf_counter()
    created = fan_out_pending(engine, clock.now(), batch)
    coso_seconds = time.perf_counter() - started
    assert created == endpoints, created

    D, LOG, OCC = Delivery.__table__, ActivityEntry.__table__, Occurrence.__table__
    with engine.connect() as conn:
        deliveries = [dict(r._mapping) for r in conn.execute(select(D).order_by(D.c.id))]
        entries = [dict(r._mapping) for r in conn.execute(select(LOG).order_by(LOG.c.id))]
        occurrence = dict(conn.execute(select(OCC)).one()._mapping)
    # The raw rows go to a second occurrence of the same schedule, so nothing collides.
    with write(engine) as conn:
        occurrence.pop("id")
        occurrence["scheduled_for"] = SLOT + timedelta(days=7)
        other = conn.execute(OCC.insert().values(**occurrence).returning(OCC.c.id)).scalar_one()
    for row in deliveries:
        row.pop("id")
        row["occurrence_id"] = other
    for row in entries:
        row.pop("id")
        row["delivery_id"] = None
    started = time.perf_counter()
    raw_insert(engine, deliveries, entries)
    raw_seconds = time.perf_counter() - started

    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM delivery")) == 2 * endpoints
    rows = 2 * endpoints
    for label, seconds in (("coso fan-out", coso_seconds), ("raw executemany", raw_seconds)):
        print(f"{label:<16} {rows:>8} rows in {seconds:6.2f} s = {rows / seconds:>9,.0f} rows/s")
    print(f"ratio (coso time / raw time): {coso_seconds / raw_seconds:.2f}x  (goal: within 1.2x)")


if __name__ == "__main__":
    main()
