"""Enable and disable schedules; the timer sees the change at its next reconcile. Content a
channel can only play with audio (its plugin's `needs_audio`) is neither enabled nor
approved for it without that audio, nor a schedule whose times cannot be expanded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from channels.registry import needing_audio
from content.media import media_for
from content.models import APPROVED, ContentItem
from content.versions import pending_draft
from coso.db import write
from coso.errors import InputError
from schedules.models import Plan, Schedule
from schedules.session_queue import minutes_text
from schedules.session_store import no_room_left
from schedules.timing import check_window, parse_rrule

S = Schedule.__table__
C = ContentItem.__table__


def set_enabled(engine: Engine, schedule_id: int, enabled: bool, now: datetime) -> None:
    """Enabling needs approved content (with audio, on a channel that plays audio), and fires
    only slots from now on (no back-fill of the time it was off)."""
    with engine.connect() as conn:
        row = conn.execute(select(S).where(S.c.id == schedule_id)).first()
        if row is None:
            raise InputError("schedule", schedule_id, "no schedule with this id")
        content = conn.execute(select(C).where(C.c.id == row.content_id)).one()
        number = conn.scalar(
            select(Plan.__table__.c.number).where(Plan.__table__.c.id == row.plan_id)
        )
    if enabled and content.state != APPROVED:
        raise InputError(
            "schedule", schedule_id, f"its content is {content.state}; approve it first"
        )
    if enabled and row.channel in needing_audio() and not media_for(engine, {content.id}):
        draft = pending_draft(engine, content.id)
        if draft is not None and draft.media_sha256 is not None:
            raise InputError(
                "schedule",
                schedule_id,
                f"its content {content.key!r} has audio only in draft version {draft.version},"
                f" which {row.channel} cannot play until it is approved: coso content approve"
                f" {number} {content.key} --version {draft.version} --by NAME",
            )
        raise InputError(
            "schedule",
            schedule_id,
            f"its content {content.key!r} has no audio, which {row.channel} needs: add it with"
            f" coso content audio {number} {content.key} FILE, or speak its text with"
            f" coso content speak {number} {content.key}",
        )
    if enabled:
        _check_expandable(row)
    if enabled and not row.enabled and row.queue is not None:
        _check_room(engine, row, now)
    values: dict[str, object] = {"enabled": enabled, "updated_at": now}
    if enabled and not row.enabled:
        values["fired_through"] = max(now, row.fired_through)
    with write(engine) as conn:
        conn.execute(update(S).where(S.c.id == schedule_id).values(**values))


def _check_room(engine: Engine, row: Any, now: datetime) -> None:
    """A queued schedule switched on again still fits each session it was placed in: while
    it was off, others may have taken its room."""
    full = no_room_left(engine, row.id, now, row.zone)
    if full:
        where, left = full[0]
        raise InputError(
            "schedule",
            row.id,
            f"lịch {row.name!r}: trong lúc tắt, buổi phát {where} đã được xếp kín (chỉ còn"
            f" {minutes_text(left)}): sửa lịch để xếp lại, hoặc bớt mục trong buổi đó",
        )


def _check_expandable(row: Any) -> None:
    """A schedule stored before the bounds were checked (a rule that never ends stepping, a
    time out of range) is not enabled again: it would never fire."""
    start = datetime.fromisoformat(row.start_local)
    try:
        check_window(start)
        if row.rrule is not None:
            parse_rrule(row.rrule, start)
    except ValueError as exc:
        raise InputError(
            "schedule", row.id, f"lịch {row.name!r} ({row.rrule or row.start_local}): {exc}"
        ) from exc


def check_approvable(engine: Engine, plan_number: str, item: Any) -> None:
    """Content item `item` (a content_item row) may be approved: a schedule that plays it on
    a channel needing audio finds audio in the version approved (the draft waiting, for
    approved content)."""
    wanting = needing_audio()
    if not wanting:
        return
    draft = pending_draft(engine, item.id)
    if draft is not None and draft.media_sha256 is not None:
        return
    if draft is None and media_for(engine, {item.id}):
        return
    with engine.connect() as conn:
        schedule = conn.execute(
            select(S.c.id, S.c.name, S.c.channel)
            .where(S.c.content_id == item.id, S.c.channel.in_(wanting))
            .order_by(S.c.id)
        ).first()
    if schedule is not None:
        raise InputError(
            "content",
            item.key,
            f"schedule {schedule.id} ({schedule.name}) plays it on {schedule.channel} and it"
            f" has no audio: add it first with coso content audio {plan_number} {item.key} FILE"
            f" (or speak its text: coso content speak {plan_number} {item.key})",
        )
