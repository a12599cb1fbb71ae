"""The entry points installed channel packages register under, read here for whoever needs
them: the channel registry (which keeps what it loads), the settings' environment check,
the migrations."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

CHANNEL_GROUP = "coso.channels"


def channel_entry_points() -> tuple[EntryPoint, ...]:
    """Every `coso.channels` entry point installed now, by name (not loaded)."""
    return tuple(sorted(entry_points(group=CHANNEL_GROUP), key=lambda e: e.name))
