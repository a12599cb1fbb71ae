"""Each player's credentials: its media token and its command key, both derived from coso's
secret, the player id and the player's key generation. Revoking a player bumps its
generation, so its old token and key stop working while every other player's keep working."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlmodel import Field, SQLModel

from channels.loudspeaker.signing import command_key, origin
from content.media import player_token
from coso.db import insert_ignoring_duplicates, write


class PlayerKey(SQLModel, table=True):
    """A player whose credentials were revoked at least once (no row: generation 0)."""

    __tablename__ = "player_key"

    player: str = Field(primary_key=True)
    generation: int = 0
    revoked_at: datetime | None = None


T = PlayerKey.__table__


@dataclass(frozen=True)
class Credentials:
    """What a player is given at provisioning (`coso players credentials ID`)."""

    player: str
    token: str
    key: str
    key_gen: int
    media_origin: str

    def lines(self) -> list[str]:
        """As the environment `coso player` reads."""
        return [
            f"COSO_PLAYER_ID={self.player}",
            f"COSO_PLAYER_TOKEN={self.token}",
            f"COSO_PLAYER_KEY={self.key}",
            f"COSO_PLAYER_KEY_GEN={self.key_gen}",
            f"COSO_MEDIA_ORIGIN={self.media_origin}",
        ]


def credentials(secret: bytes, player: str, generation: int, public_url: str) -> Credentials:
    return Credentials(
        player=player,
        token=player_token(secret, player, generation),
        key=command_key(secret, player, generation),
        key_gen=generation,
        media_origin=origin(public_url),
    )


def generation(engine: Engine, player: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(T.c.generation).where(T.c.player == player)) or 0


def generations(engine: Engine) -> dict[str, int]:
    """Every player whose generation is not 0."""
    with engine.connect() as conn:
        return dict(conn.execute(select(T.c.player, T.c.generation)).all())  # type: ignore[arg-type]


def revoke(engine: Engine, player: str, now: datetime) -> int:
    """Bump `player`'s key generation; returns the new one."""
    with write(engine) as conn:
        conn.execute(insert_ignoring_duplicates(conn, T), [{"player": player, "generation": 0}])
        conn.execute(
            update(T)
            .where(T.c.player == player)
            .values(generation=T.c.generation + 1, revoked_at=now)
        )
        return conn.scalar(select(T.c.generation).where(T.c.player == player)) or 0


class KeyRing:
    """coso's side: the key and generation to sign each player's commands with. Generations
    are read again every `refresh` seconds, so a revocation made by `coso players revoke`
    in another process applies within that time. A key is derived for each command (one
    HMAC, about 2 µs) rather than kept: kept, 50,000 players' keys held 13 MB."""

    def __init__(self, engine: Engine | None, secret: bytes, refresh: float = 5.0) -> None:
        self.engine, self.secret, self.refresh = engine, secret, refresh
        self._generations: dict[str, int] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def key(self, player: str) -> tuple[str, int]:
        with self._lock:
            if self.engine is not None and time.monotonic() - self._read_at >= self.refresh:
                self._generations = generations(self.engine)
                self._read_at = time.monotonic()
            gen = self._generations.get(player, 0)
        return command_key(self.secret, player, gen), gen
