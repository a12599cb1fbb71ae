"""Open the database of a configuration: create it, migrate it, load the current units."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from coso.config import Settings
from coso.db import make_engine, migrate
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
