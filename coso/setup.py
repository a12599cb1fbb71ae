"""Open the database of a configuration: create it, migrate it, load the current units."""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from coso.config import Settings
from coso.db import make_engine, migrate, one_at_a_time, sqlite_file
from coso.errors import InputError
from coso.units import count_units, load_current_units


def open_database(settings: Settings, *, prepare: bool = True) -> Engine:
    """The engine for `database.url`, migrated; a clear error when it cannot be used."""
    url = settings.database.url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise InputError("database.url", url, "not a database URL") from exc
    try:
        engine = make_engine(url, echo=settings.database.echo)
        if prepare:
            with one_at_a_time(engine):
                migrate(engine)
                if not count_units(engine).get("2025"):
                    load_current_units(engine)
    except NoSuchModuleError as exc:
        raise InputError("database.url", shown, "use sqlite:/// or postgresql://") from exc
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise InputError("database.url", shown, f"cannot open the database: {reason}") from exc
    except OSError as exc:
        raise InputError("database.url", shown, f"cannot create the database file: {exc}") from exc
    return engine


def existing_database(settings: Settings) -> Engine | None:
    """The engine for `database.url` when that database exists and holds coso's tables, else
    None. Creates, migrates and writes nothing: for checks that must leave no trace (a dry
    run)."""
    url = settings.database.url
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError("database.url", url, "not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        file = sqlite_file(url)
        if file is None or not file.is_file():
            return None
    engine = open_database(settings, prepare=False)
    try:
        with engine.connect() as conn:
            if inspect(conn).has_table("admin_unit"):
                return engine
    except OperationalError as exc:
        engine.dispose()
        shown = parsed.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise InputError("database.url", shown, f"cannot open the database: {reason}") from exc
    engine.dispose()
    return None
