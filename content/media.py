"""Prepared audio of content items: where it is kept, which item has which, and the tokens
players show to fetch it. Preparing it is content.audio's."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select

from content.models import ContentItem, MediaAsset
from coso.config import MediaSettings
from coso.db import insert_ignoring_duplicates, write
from coso.errors import InputError
from coso.secret_file import kept_secret

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from content.audio import PreparedAudio


def media_dir(settings: MediaSettings) -> Path:
    path = Path(settings.dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_audio(settings: MediaSettings, prepared: PreparedAudio) -> tuple[str, bool]:
    """Keep prepared audio in the media folder under its checksum: (its file name, whether
    this call wrote it — a caller whose transaction then fails removes what it wrote)."""
    name = f"{prepared.sha256}.mp3"
    target = media_dir(settings) / name
    if target.exists():
        return name, False
    partial = target.with_suffix(".part")
    partial.write_bytes(prepared.data)
    os.replace(partial, target)
    return name, True


def asset_row(
    content_id: int, prepared: PreparedAudio, file_name: str, source_name: str, now: datetime
) -> dict[str, object]:
    """The media_asset row of stored audio."""
    return {
        "content_id": content_id,
        "sha256": prepared.sha256,
        "file_name": file_name,
        "duration_seconds": prepared.duration_seconds,
        "loudness_lufs": prepared.loudness_lufs,
        "size_bytes": len(prepared.data),
        "source_name": source_name,
        "created_at": now,
    }


def attach_audio(
    engine: Engine,
    settings: MediaSettings,
    content_id: int,
    source: Path,
    now: datetime,
    intro: Path | None = None,
    outro: Path | None = None,
) -> MediaAsset:
    """Prepare `source` and make it the audio of content item `content_id` (replacing any)."""
    from content.audio import prepare_audio

    prepared = prepare_audio(source, settings, intro, outro)
    row = asset_row(content_id, prepared, store_audio(settings, prepared)[0], source.name, now)
    table = MediaAsset.__table__
    with write(engine) as conn:
        if (
            conn.scalar(
                select(ContentItem.__table__.c.id).where(ContentItem.__table__.c.id == content_id)
            )
            is None
        ):
            raise InputError("content", content_id, "no such content item")
        conn.execute(table.delete().where(table.c.content_id == content_id))
        conn.execute(insert_ignoring_duplicates(conn, table), [row])
    return MediaAsset(**row)


def media_for(engine: Engine, content_ids: set[int]) -> dict[int, MediaAsset]:
    table = MediaAsset.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.content_id.in_(content_ids))).all()
    return {r.content_id: MediaAsset(**r._asdict()) for r in rows}


def token_secret(settings: MediaSettings) -> bytes:
    """The key behind players' download tokens: configured, or made once and kept."""
    if settings.token_secret:
        return settings.token_secret.encode()
    return kept_secret(media_dir(settings) / ".token-secret")


def player_token(secret: bytes, player: str, generation: int = 0) -> str:
    """Each player's own token for downloading media (`coso players token ID`). Generation 0
    is the token players were first given; revoking a player moves it to the next one."""
    message = player if generation == 0 else f"{player}\0{generation}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:40]


def token_valid(secret: bytes, player: str, token: str, generation: int = 0) -> bool:
    return hmac.compare_digest(player_token(secret, player, generation), token)
