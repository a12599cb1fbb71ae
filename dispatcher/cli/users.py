"""`coso users`: accounts of the console (add, list, disable, reset-password, grant)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from coso.commands import current_settings, guard, open_database, out
from coso.errors import InputError
from coso.names import check_arguments

users_app = typer.Typer(
    no_args_is_help=True, help="Console accounts: add, list, disable, reset-password, grant."
)

RoleOption = Annotated[
    list[str],
    typer.Option(
        "--role",
        help="administrator | editor | approver | operator | viewer (repeat for several).",
    ),
]
UnitOption = Annotated[
    list[str], typer.Option("--unit", help="Unit code the roles reach, with every unit below it.")
]


def _password(from_stdin: bool, field: str = "password") -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Mật khẩu", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError(field, "", "cần mật khẩu")
    return password


@users_app.command("add")
@guard
def users_add(
    login: str,
    name: Annotated[str, typer.Option("--name", help="Full name as people read it.")],
    role: RoleOption,
    unit: UnitOption = [],  # noqa: B006 - typer reads the default
    organisation: Annotated[
        str | None, typer.Option("--organisation", help="Organisation whose plans are theirs.")
    ] = None,
    phone: Annotated[
        str | None, typer.Option("--phone", help="Phone for the day's items by SMS (operators).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add an account; the password is asked for (never given on the command line)."""
    check_arguments(login=login, name=name)
    from coso.users import add_user

    engine = open_database(current_settings())
    user = add_user(
        engine,
        login=login,
        name=name,
        password=_password(password_stdin),
        roles=role,
        unit_codes=unit,
        organisation=organisation,
        phone=phone,
        now=datetime.now(UTC),
    )
    out.print(f"{user.login}: added ({', '.join(user.roles)})")


@users_app.command("list")
@guard
def users_list() -> None:
    """Every account, its roles, units and state."""
    from coso.users import list_users

    engine = open_database(current_settings())
    table = Table("login", "name", "roles", "units", "phone", "state")
    for u in list_users(engine):
        table.add_row(
            u.login,
            u.name,
            ", ".join(u.roles),
            ", ".join(u.unit_codes),
            u.phone or "",
            "disabled" if u.disabled else "active",
        )
    out.print(table)


@users_app.command("disable")
@guard
def users_disable(
    login: str,
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again.")] = False,
) -> None:
    """Disable an account: its sessions end at once and it cannot log in."""
    check_arguments(login=login)
    from coso.users import disable_user

    engine = open_database(current_settings())
    user = disable_user(engine, login, datetime.now(UTC), disabled=not enable)
    out.print(f"{user.login}: {'disabled' if user.disabled else 'enabled'}")


@users_app.command("reset-password")
@guard
def users_reset_password(
    login: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
    ] = False,
) -> None:
    """Give an account a new password (a temporary one is made and printed unless one is
    read from standard input); the user must change it at the next login."""
    check_arguments(login=login)
    from coso.users import set_password, temporary_password

    engine = open_database(current_settings())
    password = _password(True) if password_stdin else temporary_password()
    set_password(engine, login, password, datetime.now(UTC), must_change=True)
    if password_stdin:
        out.print(f"{login}: password reset; it must be changed at the next login")
    else:
        out.print(f"{login}: temporary password {password} (must be changed at the next login)")


@users_app.command("grant")
@guard
def users_grant(
    login: str,
    role: RoleOption = [],  # noqa: B006
    unit: UnitOption = [],  # noqa: B006
    organisation: Annotated[str | None, typer.Option("--organisation")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Take the roles and units away instead.")
    ] = False,
) -> None:
    """Add roles and units to an account (or take them away with --revoke)."""
    check_arguments(login=login)
    from coso.users import grant

    engine = open_database(current_settings())
    user = grant(
        engine,
        login,
        datetime.now(UTC),
        roles=role,
        unit_codes=unit,
        organisation=organisation,
        phone=phone,
        revoke=revoke,
    )
    out.print(f"{user.login}: {', '.join(user.roles)} · {', '.join(user.unit_codes) or '-'}")
