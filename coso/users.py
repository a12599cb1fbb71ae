"""People who log in: their password hash (argon2), their roles and the administrative units
(and organisation) their roles reach. Who may do what is in `coso.access`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import JSON, Column, Engine, select, update
from sqlmodel import Field, SQLModel

from coso.db import write
from coso.errors import InputError
from coso.names import check_name, nfc
from coso.units import Organisation, unit_tree

ADMINISTRATOR, EDITOR, APPROVER, OPERATOR, VIEWER = (
    "administrator",
    "editor",
    "approver",
    "operator",
    "viewer",
)
ROLES = (ADMINISTRATOR, EDITOR, APPROVER, OPERATOR, VIEWER)
MIN_PASSWORD = 10
MAX_PASSWORD = 200
LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{1,39}")
_hasher = PasswordHasher()


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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(field, "…", f"mật khẩu phải có ít nhất {MIN_PASSWORD} ký tự")
    if len(password) > MAX_PASSWORD:
        raise InputError(field, "…", f"mật khẩu dài quá {MAX_PASSWORD} ký tự")
    return password


def check_login(login: str) -> str:
    login = nfc(login.strip()).lower()
    if not LOGIN.fullmatch(login):
        raise InputError(
            "login",
            login,
            "tên đăng nhập gồm 2–40 chữ thường không dấu, số, dấu chấm, gạch dưới hoặc gạch ngang",
        )
    return login


def check_roles(roles: Sequence[str]) -> list[str]:
    for role in roles:
        if role not in ROLES:
            raise InputError("role", role, f"không có vai trò này; có: {', '.join(ROLES)}")
    return sorted(set(roles), key=ROLES.index)


def temporary_password() -> str:
    """A password an administrator hands over once; the user must change it at login."""
    return secrets.token_urlsafe(12)


def _organisation_id(engine: Engine, name: str | None) -> int | None:
    if not name:
        return None
    with engine.connect() as conn:
        found = conn.scalar(
            select(Organisation.__table__.c.id).where(Organisation.__table__.c.name == nfc(name))
        )
    if found is None:
        raise InputError("organisation", name, "không có tổ chức này (tổ chức có từ tệp kế hoạch)")
    return int(found)


def _units(engine: Engine, codes: Sequence[str]) -> list[str]:
    tree = unit_tree(engine)
    for code in codes:
        tree.below(code)  # InputError naming an unknown code
    return sorted(set(codes))


def _phone(phone: str | None) -> str | None:
    if not phone:
        return None
    import phonenumbers

    try:
        parsed = phonenumbers.parse(phone, "VN")
    except phonenumbers.NumberParseException as exc:
        raise InputError("phone", phone, "không phải số điện thoại") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InputError("phone", phone, "không phải số điện thoại hợp lệ")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def add_user(
    engine: Engine,
    *,
    login: str,
    name: str,
    password: str,
    roles: Sequence[str],
    unit_codes: Sequence[str] = (),
    organisation: str | None = None,
    phone: str | None = None,
    now: datetime,
    must_change_password: bool = False,
) -> User:
    login = check_login(login)
    name = check_name("name", name)
    check_password(password)
    row = {
        "login": login,
        "name": name,
        "password_hash": hash_password(password),
        "roles": check_roles(roles),
        "unit_codes": _units(engine, unit_codes),
        "organisation_id": _organisation_id(engine, organisation),
        "phone": _phone(phone),
        "disabled": False,
        "session_epoch": 0,
        "must_change_password": must_change_password,
        "created_at": now,
        "updated_at": now,
    }
    if not row["roles"]:
        raise InputError("role", "", "cần ít nhất một vai trò")
    with write(engine) as conn:
        if conn.scalar(select(U.c.id).where(U.c.login == login)) is not None:
            raise InputError("login", login, "đã có người dùng với tên đăng nhập này")
        new_id = conn.execute(U.insert().values(**row)).inserted_primary_key[0]
    return User(id=new_id, **row)


def find_user(engine: Engine, login: str) -> User:
    with engine.connect() as conn:
        row = conn.execute(select(U).where(U.c.login == nfc(login.strip()).lower())).first()
    if row is None:
        raise InputError("login", login, "không có người dùng này")
    return User(**row._asdict())


def user_by_id(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(U).where(U.c.id == user_id)).first()
    return None if row is None else User(**row._asdict())


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [User(**r._asdict()) for r in conn.execute(select(U).order_by(U.c.login))]


def authenticate(engine: Engine, login: str, password: str) -> User | None:
    """The user whose login and password these are, unless disabled."""
    try:
        user = find_user(engine, login)
    except InputError:
        password_matches(_DUMMY_HASH, password)  # the same work, so timing tells nothing
        return None
    if user.disabled or not password_matches(user.password_hash, password):
        return None
    return user


_DUMMY_HASH = hash_password(secrets.token_hex(16))


def _change(engine: Engine, login: str, now: datetime, **values: object) -> User:
    user = find_user(engine, login)
    with write(engine) as conn:
        conn.execute(update(U).where(U.c.id == user.id).values(updated_at=now, **values))
    found = user_by_id(engine, user.id or 0)
    assert found is not None
    return found


def disable_user(engine: Engine, login: str, now: datetime, disabled: bool = True) -> User:
    user = find_user(engine, login)
    return _change(engine, login, now, disabled=disabled, session_epoch=user.session_epoch + 1)


def set_password(
    engine: Engine, login: str, password: str, now: datetime, *, must_change: bool
) -> User:
    """A new password (an administrator's reset, or the user's own change); every session
    opened with the old one ends."""
    check_password(password)
    user = find_user(engine, login)
    return _change(
        engine,
        login,
        now,
        password_hash=hash_password(password),
        must_change_password=must_change,
        session_epoch=user.session_epoch + 1,
    )


def grant(
    engine: Engine,
    login: str,
    now: datetime,
    *,
    roles: Sequence[str] = (),
    unit_codes: Sequence[str] = (),
    organisation: str | None = None,
    phone: str | None = None,
    revoke: bool = False,
) -> User:
    """Add (or with `revoke`, take away) roles and units; set the organisation or phone."""
    user = find_user(engine, login)
    new_roles, new_units = set(user.roles), set(user.unit_codes)
    checked_roles, checked_units = set(check_roles(roles)), set(_units(engine, unit_codes))
    if revoke:
        new_roles -= checked_roles
        new_units -= checked_units
    else:
        new_roles |= checked_roles
        new_units |= checked_units
    if not new_roles:
        raise InputError("role", ",".join(roles), "người dùng phải còn ít nhất một vai trò")
    values: dict[str, object] = {
        "roles": sorted(new_roles, key=ROLES.index),
        "unit_codes": sorted(new_units),
        "session_epoch": user.session_epoch + 1,
    }
    if organisation is not None:
        values["organisation_id"] = _organisation_id(engine, organisation)
    if phone is not None:
        values["phone"] = _phone(phone)
    return _change(engine, login, now, **values)


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
