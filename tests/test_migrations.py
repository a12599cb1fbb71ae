"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import dispatcher.tables  # noqa: F401
from coso.db import make_engine


def test_migrated_database_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_a_database_opened_before_any_channel_is_loaded_is_migrated_whole(
    tmp_path: Path,
) -> None:
    """A process that migrates before it has looked at its channels (the demo's loader, a
    script) still takes every channel's branch: otherwise the next process, which knows
    them, finds a head it cannot place, and a channel's tables are missing."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'bare.db'}"
    code = "import sys; from coso.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, url], check=True, cwd=Path(__file__).parent.parent)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "sms_pause" in tables  # the SMS channel's own branch
