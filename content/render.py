"""Render content for a channel: the item's body is a sandboxed Jinja2 template, strict on
undefined names, wrapped by the channel's own template in content/templates/."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.sandbox import SandboxedEnvironment

from coso.clock import local_text
from coso.errors import InputError

TEMPLATES = Path(__file__).parent / "templates"

# Names a content body may use; anything else is refused when the plan is imported.
CONTEXT_NAMES = frozenset(
    {"plan", "unit", "endpoint", "recipient", "local_time", "scheduled_for", "content"}
)


def message_context(
    plan: Any, content: Any, endpoint: Any, unit_code: str | None, unit_name: str, when: Any
) -> dict[str, Any]:
    """What a content template may read (CONTEXT_NAMES), for one endpoint at one slot: `plan`
    has number, title, issuer and zone; `content` key, title and kind; `endpoint` address and
    name; `when` is the slot in UTC."""
    return {
        "plan": {"number": plan.number, "title": plan.title, "issuer": plan.issuer},
        "unit": {"code": unit_code, "name": unit_name},
        "endpoint": {"address": endpoint.address, "name": endpoint.name},
        "recipient": {"name": endpoint.name, "phone": endpoint.address},
        "scheduled_for": when,
        "local_time": local_text(when, plan.zone),
        "content": {"key": content.key, "title": content.title, "kind": content.kind},
    }


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


@cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def check_template(field: str, text: str) -> None:
    """Refuse a body that does not parse or that uses a name coso does not provide."""
    env = _environment()
    try:
        parsed = env.parse(text)
    except TemplateSyntaxError as exc:
        raise InputError(
            field, text[:60], f"template error on line {exc.lineno}: {exc.message}"
        ) from exc
    unknown = meta.find_undeclared_variables(parsed) - CONTEXT_NAMES
    if unknown:
        raise InputError(
            field,
            text[:60],
            f"uses undefined name(s) {sorted(unknown)}; available: {sorted(CONTEXT_NAMES)}",
        )


def check_renders(field: str, text: str, context: dict[str, Any]) -> None:
    """Render `text` as it is rendered at send (strict); an InputError naming what failed,
    e.g. the undefined name 'recipient.ho_ten', when it does not render."""
    try:
        _compiled(text).render(context)
    except UndefinedError as exc:
        name = undefined_name(text, context, exc.message or "")
        reason = f"undefined name {name!r}" if name else f"undefined name: {exc.message}"
        raise InputError(field, text[:60], reason) from exc
    except Exception as exc:  # a sandbox refusal, a type error: it would fail at send too
        raise InputError(field, text[:60], f"does not render: {exc}") from exc


_MISSING = re.compile(r"has no attribute '([^']+)'|'([^']+)' is undefined")


def undefined_name(text: str, context: Mapping[str, Any], message: str) -> str | None:
    """The dotted name ('recipient.ho_ten') behind Jinja's message about it ("'dict object'
    has no attribute 'ho_ten'"): a name the template reads that the context does not have."""
    found = _MISSING.search(message)
    wanted = (found.group(1) or found.group(2)) if found else None
    for node in _environment().parse(text).find_all((nodes.Getattr, nodes.Getitem)):
        path = _dotted(node)
        if not path:
            continue
        value: Any = context
        for depth, key in enumerate(path):
            if isinstance(value, Mapping) and key in value:
                value = value[key]
            elif not isinstance(value, Mapping) and hasattr(value, key):
                value = getattr(value, key)
            else:
                if wanted in (None, key):
                    return ".".join(path[: depth + 1])
                break
    return None


def _dotted(node: nodes.Node) -> list[str] | None:
    """['recipient', 'ho_ten'] for `recipient.ho_ten` or `recipient["ho_ten"]`."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return [*base, node.attr] if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _dotted(node.node)
        return [*base, str(node.arg.value)] if base else None
    return None


@lru_cache(maxsize=512)
def _compiled(text: str) -> Template:
    return _environment().from_string(text)


@lru_cache(maxsize=512)
def used_names(text: str) -> frozenset[str]:
    """The context names a template reads."""
    return frozenset(meta.find_undeclared_variables(_environment().parse(text)))


class RenderCache:
    """Renders once per distinct input: deliveries of one slot to endpoints of the same unit
    usually read the same text. The key holds, for each context name the templates use (the
    channel template reads `plan`), what that value is made from (`sources`: the plan's id,
    the endpoint's id…), so a cached text is the text a render would give, and the context
    is built only for a text not yet rendered."""

    def __init__(self) -> None:
        self._done: dict[Hashable, Rendered] = {}

    def render(
        self,
        channel: str,
        title: str,
        body: str,
        sources: Mapping[str, Hashable],
        context: Callable[[], dict[str, Any]],
    ) -> Rendered:
        key = (channel, title, body, *(sources[n] for n in _names(title, body)))
        done = self._done.get(key)
        if done is None:
            done = self._done[key] = render(channel, title, body, context())
        return done


@lru_cache(maxsize=512)
def _names(title: str, body: str) -> tuple[str, ...]:
    return tuple(sorted(used_names(title) | used_names(body) | {"plan"}))


@cache
def _channel_template(channel: str) -> str:
    """A text channel's wrapper (`sms.txt.j2`, not escaped), an HTML one, or for a channel
    that brings none, the text as it is."""
    for name in (f"{channel}.txt.j2", f"{channel}.html.j2"):
        if (TEMPLATES / name).is_file():
            return name
    return "plain.txt.j2"


def render(channel: str, title: str, body: str, context: dict[str, Any]) -> Rendered:
    """Render a content item for `channel`; UndefinedError becomes an InputError."""
    try:
        text = _compiled(body).render(context)
        text_title = _compiled(title).render(context)
        wrapped = (
            _environment()
            .get_template(_channel_template(channel))
            .render(context, title=text_title, body=text)
        )
    except UndefinedError as exc:
        raise InputError("content.body", body[:60], f"undefined name: {exc.message}") from exc
    return Rendered(title=text_title, body=wrapped)
