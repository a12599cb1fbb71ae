"""Board addresses: `screen:<name>` for a screen that opens /boards/<name>, and
`huidu:<controller id>[@host:port]` for a Huidu LED controller."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCREEN = re.compile(r"screen:([a-z0-9][a-z0-9-]{0,63})")
HUIDU = re.compile(
    r"huidu:([A-Za-z0-9][A-Za-z0-9-]{0,63})(?:@([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?)?"
)


@dataclass(frozen=True)
class Board:
    kind: str  # "screen" | "huidu"
    name: str  # the screen's name, or the controller's id
    host: str | None = None
    port: int | None = None


def parse(text: str) -> Board:
    found = SCREEN.fullmatch(text)
    if found:
        return Board("screen", found.group(1))
    found = HUIDU.fullmatch(text)
    if found:
        port = int(found.group(3)) if found.group(3) else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is not between 1 and 65535")
        return Board(
            "huidu", found.group(1), found.group(2), port or (30080 if found.group(2) else None)
        )
    raise ValueError(
        "not screen:<name> (lower-case letters, digits, -) or huidu:<controller id>[@host:port]"
    )


def address(text: str) -> str:
    parse(text)
    return text
