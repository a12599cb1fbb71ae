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
    content_id: int,
    prepared: PreparedAudio,
    file_name: str,
    source_name: str,
    now: datetime,
    voice: str | None = None,
) -> dict[str, object]:
    """The media_asset row of stored audio (`voice`: the synthesiser's, for speech)."""
    return {
        "content_id": content_id,
        "sha256": prepared.sha256,
        "file_name": file_name,
        "duration_seconds": prepared.duration_seconds,
        "loudness_lufs": prepared.loudness_lufs,
        "size_bytes": len(prepared.data),
        "source_name": source_name,
        "created_at": now,
        "voice": voice,
    }


def attach_audio(
    engine: Engine,
    settings: MediaSettings,
    content_id: int,
    source: Path,
    now: datetime,
    intro: Path | None = None,
    outro: Path | None = None,
    by: str = "",
) -> MediaAsset:
    """Prepare `source` as the audio of a new version of content item `content_id`
    (content.versions.attach_draft_audio): approved content keeps its approved audio until
    that version is approved. Returns the prepared audio as it will be kept."""
    from content.versions import attach_draft_audio

    items = ContentItem.__table__
    with engine.connect() as conn:
        item = conn.execute(
            select(items.c.plan_id, items.c.key).where(items.c.id == content_id)
        ).first()
    if item is None:
        raise InputError("content", content_id, "no such content item")
    version = attach_draft_audio(
        engine, settings, item.plan_id, item.key, source, by, now, intro, outro
    )
    return MediaAsset(
        content_id=content_id,
        sha256=version.media_sha256,
        file_name=version.media_file_name,
        duration_seconds=version.media_duration_seconds,
        loudness_lufs=version.media_loudness_lufs,
        size_bytes=version.media_size_bytes,
        source_name=version.media_source_name,
        created_at=now,
        voice=version.media_voice,
    )


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
