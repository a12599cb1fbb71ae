"""People who log in, as far as the station channel needs them: an operator's login, phone,
roles and the administrative units those reach. (The console brings the rest: passwords,
sessions, `coso users`.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Engine, select
from sqlmodel import Field, SQLModel

from coso.units import unit_tree

ADMINISTRATOR, EDITOR, APPROVER, OPERATOR, VIEWER = (
    "administrator",
    "editor",
    "approver",
    "operator",
    "viewer",
)
ROLES = (ADMINISTRATOR, EDITOR, APPROVER, OPERATOR, VIEWER)


class User(SQLModel, table=True):
    __tablename__ = "coso_user"

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(unique=True)
    name: str
    password_hash: str
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The units the roles reach (each with every unit below it); empty: none, unless the
    # user is an administrator or belongs to an organisation.
    unit_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    phone: str | None = None  # E.164: where an operator gets the day's items by SMS
    disabled: bool = False
    # Raised when the password is reset or the account disabled: older sessions end.
    session_epoch: int = 0
    must_change_password: bool = False
    created_at: datetime
    updated_at: datetime


U = User.__table__


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [User(**r._asdict()) for r in conn.execute(select(U).order_by(U.c.login))]


def operators_of(engine: Engine, unit_code: str) -> list[User]:
    """Enabled operators whose units include `unit_code` (a commune's own, or one above)."""
    tree = unit_tree(engine)
    found = []
    for user in list_users(engine):
        if user.disabled or OPERATOR not in user.roles:
            continue
        if any(unit_code in tree.below(code) for code in user.unit_codes):
            found.append(user)
    return found
