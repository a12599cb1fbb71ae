"""What every `coso` command shares: the consoles, the settings, error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from rich.console import Console

from coso.clock import as_utc, zone
from coso.errors import CosoError, InputError, InputErrors

if TYPE_CHECKING:
    from coso.config import Settings

out = Console()
err = Console(stderr=True)


class State:
    """What the top-level options set for the command that runs."""

    config: Path | None = None
    # Checks the top of the command line adds (every channel section valid for its channel).
    checks: ClassVar[list[Callable[[Settings], None]]] = []
    # (engine, settings, clock) → the engine's services to channels, set by the top.
    make_host: Callable[..., Any] | None = None


def current_settings() -> Settings:
    from coso.config import load_settings, located  # pydantic-settings: not for `--help`

    settings = load_settings(State.config)
    try:
        for check in State.checks:
            check(settings)
    except InputError as exc:  # a channel's section: name the variable or file it came from
        raise located(exc, State.config) from exc
    return settings


def open_database(settings: Settings) -> Any:
    """The configured database, migrated (SQLAlchemy is imported when a command needs it,
    not for `coso --help`)."""
    from coso.setup import open_database as opened

    return opened(settings)


def current_host(settings: Settings) -> Any:
    """The engine's services over the configured database (for a channel's commands)."""
    from coso.clock import SystemClock
    from coso.setup import open_database

    assert State.make_host is not None, "the command line sets State.make_host"
    return State.make_host(open_database(settings), settings, SystemClock())


def report(exc: CosoError) -> None:
    """Each error on a line of its own, as written: brackets in it ([plan], a template's
    `x[0]`) are text, not console markup."""
    from rich.markup import escape

    errors = exc.errors if isinstance(exc, InputErrors) else [exc]
    for e in errors:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Commands report coso errors as a clear message with exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except CosoError as exc:
            report(exc)
            raise typer.Exit(2) from exc

    return wrapper


def parse_day(value: str | None, tz: str, name: str) -> datetime | None:
    """A day written dd/mm/yyyy (or yyyy-mm-dd), as the start of that day in `tz`."""
    if value is None:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            day = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if not 2000 <= day.year <= 2199:  # as schedules are bounded (and year 1 overflows)
            raise InputError(name, value, "năm phải từ 2000 đến 2199")
        return as_utc(day.replace(tzinfo=zone(tz)))
    raise InputError(name, value, "not a date like 21/04/2021 or 2021-04-21")
