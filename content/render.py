"""Render content for a channel: the item's body is a sandboxed Jinja2 template, strict on
undefined names, wrapped by the channel's own template in content/templates/."""

from __future__ import annotations

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
)
from jinja2.sandbox import SandboxedEnvironment

from coso.errors import InputError

TEMPLATES = Path(__file__).parent / "templates"

# Names a content body may use; anything else is refused when the plan is imported.
CONTEXT_NAMES = frozenset(
    {"plan", "unit", "endpoint", "recipient", "local_time", "scheduled_for", "content"}
)


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
