"""Channel plugins, found through the `coso.channels` entry point group.

A channel is an installed package that declares, in its `pyproject.toml`:

    [project.entry-points."coso.channels"]
    board = "vendor_board.plugin:plugin"

where `plugin` is a `ChannelPlugin`. coso's own channels register the same way, so the
engine has no list of channels and no special case for any of them. The plugin module is
imported when coso starts, even for `coso --help`: keep it light. Name its settings and
options models as "module:Class" strings (imported when first needed), and import
a channel's dependencies inside the hooks that use them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from channels.states import STATES
from coso.errors import InputError
from coso.migrations import CHANNEL_FOLDERS
from coso.plugins import channel_entry_points

if TYPE_CHECKING:
    from pydantic import BaseModel

    from channels.base import Channel
    from channels.host import ChannelHost, ChannelService, SendRules
    from channels.settings import ScheduleLimits
    from coso.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonConfirms:
    """A channel whose deliveries a person confirms (a station no computer controls): what
    the console's "Hôm nay" page lists and what its buttons call. Each takes the host."""

    # (host, unit code, local day or None for today) → tasks (channels.station.tasks
    # StationTask-like: delivery_id, title, text, audio, scheduled_for, expires_at, state,
    # status, can_confirm, code, zone …), in slot order.
    tasks: Callable[[ChannelHost, str, Any], list[Any]]
    # (host, delivery id, actor, played_at or None) → "Đã phát"
    confirm: Callable[[ChannelHost, int, str, datetime | None], Any]
    # (host, delivery id, actor, reason code, note) → "Không phát được"
    could_not_play: Callable[[ChannelHost, int, str, str, str], Any]
    # reason code → words, for the form's list
    reasons: Mapping[str, str]


@dataclass(frozen=True)
class EmergencyCall:
    """An emergency going out on a channel, as its plugin is told to choose the options of
    the emergency's schedule there."""

    reference: str  # "KC-0001/2026"
    drill: bool
    skip_opt_outs: bool  # people who opted out are reached anyway (chosen by an administrator)


@dataclass(frozen=True)
class EmergencyEnd:
    """An emergency that ends early on a channel: cancelled, or replaced by its update."""

    reference: str
    plan: Any  # the emergency's plan (its number is the reference)
    schedule_ids: tuple[int, ...]  # its schedules on this channel
    now: datetime
    actor: str
    # A content key of the plan saying it is called off, when people who got the warning
    # are to be told (a cancellation SMS), with where it goes; None: tell no one.
    notice: str | None = None
    targets: Mapping[str, list[str]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # its schedule's options there


@dataclass(frozen=True)
class ChannelPlugin:
    """What one channel brings. Only `name`, `title` and `build` are required."""

    name: str  # as written in plan files, endpoint lists and the activity log
    title: str  # what people read (Vietnamese)
    # (host, its settings) → the Channel that sends
    build: Callable[[ChannelHost, Any], Channel]
    # The model of its `[channels.<name>]` section, a subclass of
    # channels.settings.ChannelLimits, or "module:Class" naming one.
    settings: type[BaseModel] | str = "channels.settings:ChannelLimits"
    # Is it set up to send (an SMS account, a broker…)? A schedule on a channel that is not
    # is refused at import, naming what to set.
    configured: Callable[[Any], bool] = lambda _settings: True
    not_configured_hint: str = ""
    # Further moves between delivery states for this channel only: target → from-states.
    extra_moves: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # An endpoint's address as the channel keeps it (SMS: E.164); ValueError when it is not one.
    address: Callable[[str], str] | None = None
    # Per-schedule options from the plan file (`options = {...}`), checked at import: a
    # pydantic model, or "module:Class" naming one.
    options: type[BaseModel] | str | None = None
    # Its content must carry audio (content audio …) to be approved for or scheduled on it.
    needs_audio: bool = False
    # What an item must carry to be shown on it, checked at import: (the content's body as
    # written, the schedule's checked options) → why it cannot go out, or None.
    check_item: Callable[[str, Mapping[str, Any]], str | None] | None = None
    # Items due at one place play one after another (loudspeakers, a station): priority items
    # that share a slot in a commune go out in the order its operator sets (Hôm nay).
    plays_in_turn: bool = False
    # (its settings) → how long before its slot a schedule on it fires: its devices keep a
    # programme and start each item at its time by their own clock, so its items go out
    # ahead and are there when the slot comes (screens). None: at the slot.
    cue_ahead: Callable[[Any], timedelta] | None = None
    # Rules the sender applies before sending (quiet hours, opt-outs, caps).
    rules: Callable[[ChannelHost, Any], SendRules] | None = None
    # Inbound events and upkeep, run beside the sender while coso serves.
    service: Callable[[ChannelHost, Channel], ChannelService] | None = None
    # Web routes (Starlette routes or mounts: webhooks, media, pages), given the host and the
    # app's templates (pages extend "base.html"; `templates` below adds the channel's own).
    routes: Callable[[ChannelHost, Any], list[Any]] | None = None
    templates: str | None = None  # a folder of the channel's page templates
    # Adds its commands to the `coso` command line (it is given the root Typer app).
    cli: Callable[[Any], None] | None = None
    # Imports the modules that define its tables (SQLModel), so migrations see them.
    tables: Callable[[], None] | None = None
    # Folder of its Alembic migrations (its own branch), when it has tables.
    migrations: str | None = None
    # Started around `coso serve` when the settings ask for it (a loopback MQTT broker);
    # may change the channel's settings (the broker's address).
    local_services: Callable[[Any], AbstractContextManager[str | None]] | None = None
    # What its devices last said of themselves: (engine, endpoint ids) → {id: DeviceState},
    # for the console's device list (a channel whose endpoints report nothing has none).
    device_states: Callable[[Any, Sequence[int]], Mapping[int, Any]] | None = None
    # Simulated endpoints for `coso serve --demo`: (settings, its settings, the demo's
    # endpoint addresses) → something with stop().
    demo: Callable[[Any, Any, list[str]], Any] | None = None
    # Texts one person outside any plan (an operator's list of the day): (host, its
    # settings) → send(E.164 number, text) → the provider's id of the message; raises
    # TransientSendError or PermanentSendError. Another channel finds it through the
    # registry (`text_senders`), so it never imports this one.
    text_sender: Callable[[ChannelHost, Any], Callable[[str, str], str]] | None = None
    # Offered every text people send to coso (the SMS webhook, after its signature check,
    # before its own STOP handling): (host, sender's number, body, when) → the answer to
    # text back when the text was this channel's to handle (an operator's "XN 4821"), else
    # None.
    inbound_text: Callable[[ChannelHost, str, str, datetime], str | None] | None = None
    # Its deliveries are tasks a person confirms (see PersonConfirms).
    confirmed_by_people: PersonConfirms | None = None
    # An emergency on it (`coso emergency send`): (its settings, EmergencyCall) → the options
    # of the emergency's schedule (SMS: whether opt-outs are honoured).
    emergency_options: Callable[[Any, EmergencyCall], dict[str, Any]] | None = None
    # An emergency ends early: stop it where it plays or shows, tell people where asked.
    # (host, its settings, EmergencyEnd) → what it did, in words for the activity log.
    end_emergency: Callable[[ChannelHost, Any, EmergencyEnd], str] | None = None


@cache
def plugins() -> dict[str, ChannelPlugin]:
    """Every installed channel, by name (the entry points are read once)."""
    found: dict[str, ChannelPlugin] = {}
    for ep in channel_entry_points():
        try:
            plugin = ep.load()
        except Exception as exc:  # one broken package must not stop the others
            log.error("channel %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(plugin, ChannelPlugin):
            log.error("entry point %r (%s) is not a ChannelPlugin", ep.name, ep.value)
            continue
        if plugin.name != ep.name:
            log.error("entry point %r names a channel called %r: ignored", ep.name, plugin.name)
            continue
        unknown = {s for to, sources in plugin.extra_moves.items() for s in (to, *sources)} - set(
            STATES
        )
        if unknown:
            log.error("channel %r moves deliveries to or from no state %s", ep.name, unknown)
            continue
        found[plugin.name] = plugin
        if plugin.migrations and plugin.migrations not in CHANNEL_FOLDERS:
            CHANNEL_FOLDERS.append(plugin.migrations)
    return found


def names() -> list[str]:
    return sorted(plugins())


def get(name: str, field_name: str = "channel") -> ChannelPlugin:
    """The plugin called `name`; an error naming the field and what is registered."""
    found = plugins().get(name)
    if found is None:
        raise InputError(field_name, name, f"no such channel; registered: {', '.join(names())}")
    return found


def model(named: type[BaseModel] | str) -> type[BaseModel]:
    """A model given as a class, or as "module:Class"."""
    if not isinstance(named, str):
        return named
    module, _, attr = named.partition(":")
    return getattr(import_module(module), attr)  # type: ignore[no-any-return]


def settings_of(settings: Settings, name: str) -> Any:
    """The channel's settings section, checked by its model (once per Settings object)."""
    from pydantic import ValidationError

    plugin = get(name)
    try:
        return settings.channel_section(name, model(plugin.settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"channels.{name}.{where}" if where else f"channels.{name}",
            first.get("input"),
            first["msg"],
        ) from exc


def schedule_limits(settings: Settings, name: str) -> ScheduleLimits:
    """How often and how far ahead one schedule may fire on channel `name`: its settings'
    `schedules` section (channels.settings.ScheduleLimits), or the base defaults."""
    from channels.settings import ScheduleLimits

    found = getattr(settings_of(settings, name), "schedules", None)
    return found if isinstance(found, ScheduleLimits) else ScheduleLimits()


def check_settings(settings: Settings) -> None:
    """Every `[channels.X]` section names an installed channel and is valid for it."""
    for name in settings.channels:
        get(name, f"channels.{name}")
        settings_of(settings, name)


def configured(settings: Settings) -> list[str]:
    """Channels set up to send, in name order."""
    return [
        name for name, plugin in plugins().items() if plugin.configured(settings_of(settings, name))
    ]


def extra_moves() -> dict[str, dict[str, tuple[str, ...]]]:
    """channel → target state → further states it may come from."""
    return {name: dict(p.extra_moves) for name, p in plugins().items() if p.extra_moves}


def needing_audio() -> set[str]:
    return {name for name, p in plugins().items() if p.needs_audio}


def load_tables() -> None:
    """Import every channel's tables (SQLModel registers them), e.g. to write a migration."""
    for plugin in plugins().values():
        if plugin.tables is not None:
            plugin.tables()


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A schedule's options for channel `name`, checked and with defaults left out."""
    from pydantic import ValidationError

    plugin = get(name)
    if not options:
        return {}
    if plugin.options is None:
        raise InputError("options", dict(options), f"channel {name} takes no options")
    try:
        checked = model(plugin.options).model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"options.{where}", first.get("input"), first["msg"]) from exc
    return checked.model_dump(exclude_unset=True)


def each(settings: Settings, hook: str) -> Iterator[tuple[ChannelPlugin, Any]]:
    """(plugin, its settings) for every plugin that has `hook`, in name order."""
    for plugin in with_hook(hook):
        yield plugin, settings_of(settings, plugin.name)


def with_hook(hook: str) -> list[ChannelPlugin]:
    """Plugins that have `hook`, in name order (no settings needed: command lines)."""
    return [plugins()[n] for n in names() if getattr(plugins()[n], hook) is not None]


def text_senders(host: ChannelHost) -> list[Callable[[str, str], str]]:
    """A way to text one person through each channel set up to (in name order)."""
    found = []
    for plugin, cfg in each(host.settings, "text_sender"):
        if not plugin.configured(cfg):
            continue
        try:
            found.append(plugin.text_sender(host, cfg))  # type: ignore[misc]
        except Exception as exc:  # half set up (no sender): it cannot text anyone
            log.error("channel %r cannot text people: %s", plugin.name, exc)
    return found


def offer_text(host: ChannelHost, sender: str, body: str, at: datetime) -> str | None:
    """Offer a text someone sent to coso to each channel that reads them; the first answer,
    or None when none took it. One channel's failure does not stop the others."""
    for plugin in with_hook("inbound_text"):
        try:
            answer = plugin.inbound_text(host, sender, body, at)  # type: ignore[misc]
        except Exception:
            log.exception("channel %r failed on a text from %s", plugin.name, sender[:20])
            continue
        if answer is not None:
            return answer
    return None


def describe(settings: Settings) -> Sequence[tuple[str, str, bool, str]]:
    """(name, title, configured, hint) for `coso channels`."""
    rows = []
    for name in names():
        plugin = plugins()[name]
        ok = plugin.configured(settings_of(settings, name))
        rows.append((name, plugin.title, ok, "" if ok else plugin.not_configured_hint))
    return rows
