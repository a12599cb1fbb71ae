"""Open the database of a configuration: create it, migrate it, load the current units."""

from __future__ import annotations

from sqlalchemy import Engine

from coso.config import Settings
from coso.db import make_engine, migrate
from coso.units import count_units, load_current_units


def open_database(settings: Settings, *, prepare: bool = True) -> Engine:
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    if prepare:
        migrate(engine)
        if not count_units(engine).get("2025"):
            load_current_units(engine)
    return engine
