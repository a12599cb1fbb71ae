"""Versions of content items. Editing approved content makes a draft version; the approved
one keeps going out (the item's own columns and its media_asset are what deliveries,
schedules and players read) until that exact draft — its number, and the checksum of its
title, body and audio — is approved, which copies it into the item in one transaction.
Content that was never approved has nothing going out: the item shows its newest version."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from content.models import (
    APPROVED,
    DRAFT,
    RETIRED,
    SUPERSEDED,
    ContentItem,
    ContentVersion,
    MediaAsset,
)
from content.render import check_template
from coso.db import write
from coso.errors import InputError
from coso.names import nfc, text_problem

if TYPE_CHECKING:
    from coso.config import MediaSettings

C, V, M = ContentItem.__table__, ContentVersion.__table__, MediaAsset.__table__

# How people read a version's state.
VERSION_STATE_NAMES = {DRAFT: "bản nháp", APPROVED: "đã duyệt", SUPERSEDED: "đã thay thế"}
# media_asset column → the content_version column that keeps it for one version
MEDIA_COLUMNS = {
    "sha256": "media_sha256",
    "file_name": "media_file_name",
    "duration_seconds": "media_duration_seconds",
    "loudness_lufs": "media_loudness_lufs",
    "size_bytes": "media_size_bytes",
    "source_name": "media_source_name",
    "voice": "media_voice",
}
NO_MEDIA: dict[str, Any] = dict.fromkeys(MEDIA_COLUMNS.values())
Item = Row[Any]


def version_checksum(title: str, body: str, media_sha256: str | None) -> str:
    """What an approver saw, as one value: sha256 over [title, body, audio sha256] as
    compact UTF-8 JSON (null when there is no audio)."""
    text = json.dumps([title, body, media_sha256], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def media_of(version: Any) -> dict[str, Any]:
    """A version's audio columns (all None when it has none)."""
    return {column: getattr(version, column) for column in MEDIA_COLUMNS.values()}


def media_columns(asset_row: dict[str, Any]) -> dict[str, Any]:
    """A media_asset row (content.media.asset_row) as a version's audio columns."""
    return {column: asset_row[name] for name, column in MEDIA_COLUMNS.items()}


# ---------------------------------------------------------------- inside a transaction


def item_in(conn: Connection, plan_id: int, key: str) -> Item:
    """The content item `key` of the plan, locked for this transaction (PostgreSQL)."""
    row = conn.execute(
        select(C).where(C.c.plan_id == plan_id, C.c.key == key).with_for_update()
    ).first()
    if row is None:
        raise InputError("content", key, "no content with this key in the plan")
    return row


def versions_in(conn: Connection, item: Item) -> list[Row[Any]]:
    """Every version of `item`, oldest first; an item written without one gets its
    version row now, from what it holds."""
    rows = list(conn.execute(select(V).where(V.c.content_id == item.id).order_by(V.c.version)))
    if rows:
        return rows
    asset = conn.execute(select(M).where(M.c.content_id == item.id)).first()
    media = media_columns(asset._asdict()) if asset is not None else dict(NO_MEDIA)
    approved = item.approved_at is not None
    conn.execute(
        insert(V),
        [
            {
                "content_id": item.id,
                "version": item.version,
                "title": item.title,
                "body": item.body,
                **media,
                "checksum": version_checksum(item.title, item.body, media["media_sha256"]),
                "state": APPROVED if approved else DRAFT,
                "edited_by": "",
                "edited_at": item.created_at,
                "approved_by": item.approved_by if approved else None,
                "approved_at": item.approved_at,
            }
        ],
    )
    return list(conn.execute(select(V).where(V.c.content_id == item.id)))


def new_version_in(
    conn: Connection,
    item: Item,
    title: str,
    body: str,
    media: dict[str, Any],
    by: str,
    now: datetime,
) -> ContentVersion:
    """Record the next version of `item` as a draft. Approved content keeps going out as it
    is; a draft item shows the new version at once. A draft nobody approved is superseded."""
    if item.state == RETIRED:
        raise InputError("content", item.key, "đã ngừng dùng (retired): không sửa được nữa")
    latest = versions_in(conn, item)[-1]
    checksum = version_checksum(title, body, media["media_sha256"])
    if checksum == latest.checksum:
        raise InputError(
            "content", item.key, f"không có thay đổi so với phiên bản {latest.version}"
        )
    if latest.state == DRAFT:
        conn.execute(update(V).where(V.c.id == latest.id).values(state=SUPERSEDED))
    row = {
        "content_id": item.id,
        "version": latest.version + 1,
        "title": title,
        "body": body,
        **media,
        "checksum": checksum,
        "state": DRAFT,
        "edited_by": by,
        "edited_at": now,
        "approved_by": None,
        "approved_at": None,
    }
    conn.execute(insert(V), [row])
    if item.state != APPROVED:
        _make_current(conn, item, row, now)
    return _version(conn, item.id, row["version"])


def approve_in(
    conn: Connection,
    item: Item,
    version: int | None,
    by: str,
    now: datetime,
    checksum: str | None = None,
) -> ContentVersion:
    """Approve draft `version` of `item` (None: its newest draft), which must be the newest
    version: an approver approves what they saw. With `checksum`, it must also be the one
    they saw. The draft then goes out instead of the version approved before it."""
    if item.state == RETIRED:
        raise InputError("content", item.key, "is retired; cannot become approved")
    if not by.strip():
        raise InputError("by", by, "cần ghi tên người duyệt")
    latest = versions_in(conn, item)[-1]
    if latest.state != DRAFT:
        if version is None:
            raise InputError("content", item.key, f"is {item.state}; cannot become approved")
        raise InputError(
            "version",
            version,
            f"{item.key!r} không có bản nháp chờ duyệt: phiên bản {latest.version} đã được"
            f" duyệt bởi {latest.approved_by}",
        )
    if version is not None and version != latest.version:
        raise InputError(
            "version",
            version,
            f"không phải bản nháp mới nhất của {item.key!r}: phiên bản {latest.version}"
            f" (sửa bởi {latest.edited_by or 'không rõ'}) đã thay nó; hãy xem lại"
            f" (coso content versions) rồi duyệt phiên bản {latest.version}",
        )
    if checksum is not None and checksum != latest.checksum:
        raise InputError(
            "checksum",
            checksum,
            f"không khớp phiên bản {latest.version} của {item.key!r}: nội dung đã đổi từ lúc"
            " xem; hãy xem lại rồi duyệt",
        )
    conn.execute(
        update(V).where(V.c.content_id == item.id, V.c.state == APPROVED).values(state=SUPERSEDED)
    )
    conn.execute(
        update(V).where(V.c.id == latest.id).values(state=APPROVED, approved_by=by, approved_at=now)
    )
    _make_current(conn, item, latest._asdict(), now, approved=(by, now))
    return _version(conn, item.id, latest.version)


def _make_current(
    conn: Connection,
    item: Item,
    version: dict[str, Any],
    now: datetime,
    approved: tuple[str, datetime] | None = None,
) -> None:
    """Put `version` in the item's own columns and media_asset: what goes out."""
    values: dict[str, Any] = {
        "title": version["title"],
        "body": version["body"],
        "version": version["version"],
    }
    if approved is not None:
        values.update(state=APPROVED, approved_by=approved[0], approved_at=approved[1])
    done = conn.execute(
        update(C)
        .where(C.c.id == item.id, C.c.state == item.state, C.c.version == item.version)
        .values(**values)
    )
    if done.rowcount != 1:
        raise InputError("content", item.key, "vừa được người khác sửa hoặc duyệt; hãy thử lại")
    sha = version["media_sha256"]
    if conn.scalar(select(M.c.sha256).where(M.c.content_id == item.id)) == sha:
        return
    conn.execute(M.delete().where(M.c.content_id == item.id))
    if sha is not None:
        asset = {name: version[column] for name, column in MEDIA_COLUMNS.items()}
        conn.execute(insert(M), [{"content_id": item.id, **asset, "created_at": now}])


def _version(conn: Connection, content_id: int, number: int) -> ContentVersion:
    row = conn.execute(select(V).where(V.c.content_id == content_id, V.c.version == number)).one()
    return ContentVersion(**row._mapping)


# ---------------------------------------------------------------- one call, one transaction


def check_text(title: str, body: str) -> tuple[str, str]:
    """A title and body as stored (NFC), or an error naming the one that cannot be."""
    title, body = nfc(title), nfc(body)
    if not title.strip():
        raise InputError("title", title, "không được để trống")
    for field, text in (("title", title), ("body", body)):
        problem = text_problem(text)
        if problem:
            raise InputError(field, text[:60], problem)
        check_template(field, text)
    return title, body


def edit_content(
    engine: Engine,
    plan_id: int,
    key: str,
    title: str | None,
    body: str | None,
    by: str,
    now: datetime,
) -> ContentVersion:
    """A new version of content `key` with this title and body (None: as the newest version
    has it) and the newest version's audio. Refused, changing nothing, for a template that
    does not parse, retired content, or no change."""
    with write(engine) as conn:
        item = item_in(conn, plan_id, nfc(key))
        latest = versions_in(conn, item)[-1]
        title, body = check_text(
            latest.title if title is None else title, latest.body if body is None else body
        )
        return new_version_in(conn, item, title, body, media_of(latest), by, now)


def attach_draft_audio(
    engine: Engine,
    settings: MediaSettings,
    plan_id: int,
    key: str,
    source: Path,
    by: str,
    now: datetime,
    intro: Path | None = None,
    outro: Path | None = None,
) -> ContentVersion:
    """Prepare `source` (checked, normalised, with jingles) as the audio of a new version
    of content `key`: approved content keeps playing its approved audio until this version
    is approved. The file is stored under its checksum before the version is written, and
    removed again if this call wrote it and the version is not."""
    from content.audio import prepare_audio
    from content.media import asset_row, media_dir, store_audio

    prepared = prepare_audio(source, settings, intro, outro)
    name, wrote = store_audio(settings, prepared)
    try:
        with write(engine) as conn:
            item = item_in(conn, plan_id, nfc(key))
            latest = versions_in(conn, item)[-1]
            media = media_columns(asset_row(item.id, prepared, name, source.name, now))
            return new_version_in(conn, item, latest.title, latest.body, media, by, now)
    except BaseException:
        if wrote:
            (media_dir(settings) / name).unlink(missing_ok=True)
        raise


def approve(
    engine: Engine,
    plan_id: int,
    key: str,
    version: int | None,
    by: str,
    now: datetime,
    checksum: str | None = None,
) -> ContentVersion:
    """Approve draft `version` of content `key` (see `approve_in`); returns it, approved."""
    with write(engine) as conn:
        return approve_in(conn, item_in(conn, plan_id, nfc(key)), version, by, now, checksum)


def list_versions(engine: Engine, plan_id: int, key: str) -> list[ContentVersion]:
    """Every version of content `key`, oldest first."""
    with write(engine) as conn:  # may write the first version of an item that has none
        item = item_in(conn, plan_id, nfc(key))
        return [ContentVersion(**r._mapping) for r in versions_in(conn, item)]


def pending_draft(engine: Engine, content_id: int) -> ContentVersion | None:
    """The draft waiting for approval of content that is approved, if any."""
    with engine.connect() as conn:
        row = conn.execute(
            select(V)
            .join(C, C.c.id == V.c.content_id)
            .where(V.c.content_id == content_id, V.c.state == DRAFT, C.c.state == APPROVED)
            .order_by(V.c.version.desc())
        ).first()
    return ContentVersion(**row._mapping) if row is not None else None
