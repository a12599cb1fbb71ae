"""Who may do what, where: a user's roles give actions, their units (each with every unit
below it) and their organisation give the places. Every console route asks `Access`; the
answer depends on both the action and the units of what is asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coso.errors import CosoError
from coso.labels import role_label
from coso.units import UnitTree
from coso.users import ADMINISTRATOR, APPROVER, EDITOR, OPERATOR, VIEWER, User

READ = "read"  # plans, logs, reports and devices of one's units
EDIT = "edit"  # plans, content, endpoints, groups and schedules
APPROVE = "approve"  # approve or retire content
CONFIRM = "confirm"  # a commune's confirmations, notes and priority clashes
SEE_PHONES = "see_phones"  # citizens' numbers: only roles that send SMS
MANAGE_USERS = "manage_users"
DECLARE = "declare_emergency"  # an emergency on every channel of one's units
SKIP_OPT_OUTS = "skip_opt_outs"  # an emergency that reaches numbers that opted out

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    ADMINISTRATOR: frozenset(
        {READ, EDIT, APPROVE, CONFIRM, SEE_PHONES, MANAGE_USERS, DECLARE, SKIP_OPT_OUTS}
    ),
    EDITOR: frozenset({READ, EDIT, SEE_PHONES, DECLARE}),
    APPROVER: frozenset({READ, APPROVE}),
    OPERATOR: frozenset({READ, CONFIRM, DECLARE}),
    VIEWER: frozenset({READ}),
}


def allowed_roles(action: str) -> list[str]:
    """The roles that allow `action`."""
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def refusal(login: str, roles: Iterable[str], action: str, what: str) -> str:
    """Why `login` may not do `what` (the action `action`): the roles they hold, and those
    that would allow it."""
    held = ", ".join(role_label(r) for r in roles) or "không có vai trò nào"
    may = ", ".join(role_label(r) for r in allowed_roles(action))
    return f"vai trò của {login} ({held}) không cho phép {what}; chỉ vai trò {may} được chọn"


class Forbidden(CosoError):
    """The user may not do this here (403)."""


@dataclass(frozen=True)
class Access:
    user: User
    # Every unit code the user's roles reach; None: all (an administrator).
    units: frozenset[str] | None
    organisation_id: int | None

    @property
    def login(self) -> str:
        return self.user.login

    def can(self, action: str) -> bool:
        return any(action in ROLE_ACTIONS.get(r, frozenset()) for r in self.user.roles)

    def reaches(self, unit_code: str | None) -> bool:
        return self.units is None or (unit_code is not None and unit_code in self.units)

    def reaches_any(self, unit_codes: Iterable[str | None]) -> bool:
        return self.units is None or any(self.reaches(c) for c in unit_codes)

    def owns(self, organisation_id: int | None) -> bool:
        """Plans of the user's organisation are theirs wherever they reach."""
        return self.organisation_id is not None and organisation_id == self.organisation_id

    def require(
        self, action: str, unit_codes: Iterable[str | None] | None = None, org: int | None = None
    ) -> None:
        """Raise Forbidden unless the user's roles allow `action` and, when units or an
        organisation are given, the user reaches one of those units or owns it."""
        if not self.can(action):
            raise Forbidden(f"vai trò của {self.login} không cho phép việc này")
        if unit_codes is None and org is None:
            return
        if self.units is None or self.owns(org) or self.reaches_any(unit_codes or ()):
            return
        raise Forbidden(f"{self.login} không phụ trách đơn vị này")

    def require_unit(self, action: str, unit_code: str) -> None:
        """Raise Forbidden unless `action` is allowed on this one unit."""
        if not self.can(action):
            raise Forbidden(f"vai trò của {self.login} không cho phép việc này")
        if not self.reaches(unit_code):
            raise Forbidden(f"{self.login} không phụ trách đơn vị {unit_code}")

    def visible(self, unit_codes: Iterable[str | None]) -> set[str | None]:
        """Of these units, those the user reaches (all of them for an administrator)."""
        codes = set(unit_codes)
        return codes if self.units is None else {c for c in codes if c in self.units}


def access_for(user: User, tree: UnitTree) -> Access:
    if ADMINISTRATOR in user.roles:
        return Access(user, None, user.organisation_id)
    units: set[str] = set()
    for code in user.unit_codes:
        try:
            units |= tree.below(code)
        except CosoError:  # a unit that no longer exists reaches nothing
            continue
    return Access(user, frozenset(units), user.organisation_id)
