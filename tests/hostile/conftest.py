"""What the hostile-input tests share: the database as a whole, and the command line."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel
from typer.testing import CliRunner, Result

import dispatcher.tables  # noqa: F401  (every table, for the snapshot)
from dispatcher.cli.app import app

REFERENCE = {"admin_unit", "unit_mapping"}  # loaded once, thousands of rows: counted only
Snapshot = dict[str, Any]


def snapshot(engine: Engine, exclude: Collection[str] = ()) -> Snapshot:
    """Every table's rows (reference tables: their count), to compare before and after."""
    found: Snapshot = {}
    with engine.connect() as conn:
        for name, table in sorted(SQLModel.metadata.tables.items()):
            if name in exclude:
                continue
            if name in REFERENCE:
                found[name] = conn.scalar(select(func.count()).select_from(table))
            else:
                rows = conn.execute(select(table)).all()
                found[name] = sorted((tuple(r) for r in rows), key=repr)
    return found


def changed(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """The tables that differ, with what was added (for a readable failure)."""
    diff = {}
    for name in before:
        if before[name] != after[name]:
            if isinstance(before[name], list):
                diff[name] = [r for r in after[name] if r not in before[name]][:3] or "rows gone"
            else:
                diff[name] = (before[name], after[name])
    return diff


Cli = Callable[..., Result]


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`coso ARGS…` on the test database, as the entry point runs it (coso's errors become
    one message and exit code 2)."""
    runner = CliRunner()
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str, **kw: Any) -> Result:
        return runner.invoke(app, list(args), **kw)

    return invoke


def assert_clear_refusal(result: Result, *names: str) -> None:
    """Exit code 2 (or click's 2 for bad arguments), no traceback, an `error:` line naming
    each of `names`."""
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{output[-2000:]}"
    )
    assert result.exit_code == 2, f"exit code {result.exit_code}:\n{output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    flat = " ".join(output.split())
    for name in names:
        assert name in flat, f"the refusal does not name {name!r}:\n{output[-2000:]}"


def restore(engine: Engine, before: Snapshot) -> None:
    """Put back every non-reference table as `before` holds it, so that one input that
    was wrongly accepted does not spoil the examples after it."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name in before]
    with engine.begin() as conn:
        for table in reversed(tables):
            if isinstance(before[table.name], list):
                conn.execute(table.delete())
        for table in tables:
            rows = before[table.name]
            if isinstance(rows, list) and rows:
                keys = [c.name for c in table.columns]
                conn.execute(table.insert(), [dict(zip(keys, r, strict=True)) for r in rows])


def assert_unchanged(engine: Engine, before: Snapshot, exclude: Collection[str] = ()) -> None:
    """The database is as `before` (restored if not, then the test fails naming the rows)."""
    after = snapshot(engine, exclude)
    diff = changed(before, after)
    if diff:
        restore(engine, before)
    assert not diff, f"the database changed: {diff}"
