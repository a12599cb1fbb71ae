"""The boards' own text template (`[channels.boards] template`): how every item's text is
laid out on a board, around the item's own text (itself a template, rendered per unit as on
every channel). Jinja2 in coso's sandbox; the names it may use are below."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from coso.errors import InputError

FIELD = "channels.boards.template"
NAMES = frozenset({"title", "body", "date", "time"})  # date dd/mm/yyyy, time HH:MM


@cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def check(text: str) -> str:
    """`text` when it is a template of the names a board's template has; else an InputError
    naming the setting."""
    try:
        parsed = _environment().parse(text)
    except TemplateSyntaxError as exc:
        raise InputError(FIELD, text[:60], f"lỗi mẫu ở dòng {exc.lineno}: {exc.message}") from exc
    unknown = meta.find_undeclared_variables(parsed) - NAMES
    if unknown:
        raise InputError(
            FIELD,
            text[:60],
            f"mẫu dùng tên không có: {', '.join(sorted(unknown))} (có: {', '.join(sorted(NAMES))})",
        )
    return text


@cache
def _compiled(text: str):  # type: ignore[no-untyped-def]
    return _environment().from_string(check(text))


def laid_out(template: str, title: str, body: str, slot: datetime, zone: str) -> str:
    """An item's text on a board: `body` (already rendered) laid out by the template; the
    body itself when there is no template."""
    if not template:
        return body
    local = slot.astimezone(ZoneInfo(zone))
    try:
        text = _compiled(template).render(
            title=title, body=body, date=f"{local:%d/%m/%Y}", time=f"{local:%H:%M}"
        )
    except UndefinedError as exc:  # checked names, but an attribute may still be missing
        raise InputError(FIELD, template[:60], f"mẫu không hiện được: {exc.message}") from exc
    return text.strip()
