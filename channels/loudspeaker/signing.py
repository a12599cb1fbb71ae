"""Signed commands (docs/player-protocol.md, "Signed commands"): each player holds a key of
its own, derived from coso's secret, its id and its key generation; coso signs every command
with it and the player acts only on a command it can verify. Pure functions and a small
memory of what was already acted on; no network here."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from channels.loudspeaker import protocol as p

SIG, KEY_GEN, NONCE, PLAYER = "sig", "key_gen", "nonce", "player"
# Nonces: 8 random hex digits drawn once per process, then a count. Unique is all a nonce
# must be (the signature covers it); drawing each from the system's generator released the
# GIL for a system call per command, and a busy process took it back only turns later.
_NONCE_PREFIX = secrets.token_hex(4)
_nonce_count = itertools.count()
# A command older than this (by its sent_at) is refused as a replay; coso sends again, newly
# signed, what a player missed while offline longer.
MAX_AGE = timedelta(minutes=15)
# A command dated this far after the player's clock is refused too (clock skew allowance).
MAX_AHEAD = timedelta(minutes=2)


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, the default port left out."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def command_key(secret: bytes, player: str, generation: int) -> str:
    """The key player `player` holds at key generation `generation`, as 64 hex digits:
    HMAC-SHA256(secret, "coso-command-key\\0<player>\\0<generation>")."""
    message = f"coso-command-key\0{player}\0{generation}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def canonical(command: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the command as JSON without `sig`, keys sorted, no
    spaces, non-ASCII written as UTF-8."""
    body = {k: v for k, v in command.items() if k != SIG}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(command: dict[str, Any], key: str) -> str:
    return hmac.new(bytes.fromhex(key), canonical(command), hashlib.sha256).hexdigest()


def sign(
    command: dict[str, Any], player: str, key: str, generation: int, now: datetime
) -> dict[str, Any]:
    """`command` for `player`, with the fields a player checks and their signature. The
    protocol version `v` is part of what is signed."""
    signed = {"v": p.VERSION, **command, PLAYER: player, KEY_GEN: generation}
    signed.setdefault("sent_at", p.stamp(now))
    signed[NONCE] = next_nonce()
    signed[SIG] = signature(signed, key)
    return signed


def next_nonce() -> str:
    """16 hex digits, not the same twice in 2**32 commands of one process (the count is
    atomic); a player keeps nonces 15 minutes."""
    return f"{_NONCE_PREFIX}{next(_nonce_count) & 0xFFFFFFFF:08x}"


class Refused(ValueError):
    """A command the player must not act on; the message says why."""


class Repeated(Refused):
    """A command this player has already acted on, signed and all: the broker delivering it
    again (QoS 1 after a lost acknowledgement or a reconnect) or a replay. Either way it is
    not acted on twice, and it is nothing to warn about."""


@dataclass
class Verifier:
    """A player's check of the commands it receives. `seen`: nonce → sent_at of commands
    acted on, kept while they are within MAX_AGE (the player saves it with its state)."""

    player: str
    key: str
    generation: int
    seen: dict[str, str] = field(default_factory=dict)

    def check(self, command: dict[str, Any], now: datetime) -> None:
        """Raises Refused unless `command` is signed for this player with its current key,
        is recent, and was not acted on before. Remembers it when it passes."""
        sig = command.get(SIG)
        if not isinstance(sig, str):
            raise Refused("unsigned command")
        if command.get(PLAYER) != self.player:
            raise Refused(f"command for player {command.get(PLAYER)!r}, not this one")
        if command.get(KEY_GEN) != self.generation:
            raise Refused(
                f"key_gen = {command.get(KEY_GEN)!r}: this player holds generation "
                f"{self.generation}"
            )
        if not hmac.compare_digest(signature(command, self.key), sig):
            raise Refused("bad signature (altered, or signed with another key)")
        try:
            sent_at = p.parse_time(command.get("sent_at"), "sent_at")
        except p.ProtocolError as exc:
            raise Refused(str(exc)) from exc
        if sent_at is None:
            raise Refused("sent_at is missing")
        if sent_at < now - MAX_AGE:
            raise Refused(f"sent_at = {command['sent_at']}: older than {MAX_AGE} (a replay?)")
        if sent_at > now + MAX_AHEAD:
            raise Refused(f"sent_at = {command['sent_at']}: later than this player's clock")
        nonce = command.get(NONCE)
        if not isinstance(nonce, str) or not nonce:
            raise Refused("nonce is missing")
        if nonce in self.seen:
            raise Repeated(f"nonce {nonce} already acted on")
        self.forget_old(now)
        self.seen[nonce] = command["sent_at"]

    def forget_old(self, now: datetime) -> None:
        horizon = now - MAX_AGE - MAX_AHEAD
        for nonce, sent in list(self.seen.items()):
            when = p.parse_time(sent, "sent_at")
            if when is None or when < horizon:
                del self.seen[nonce]
