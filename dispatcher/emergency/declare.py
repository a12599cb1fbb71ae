"""Declare, update and cancel an emergency. Declaring writes, in one transaction, its plan
(numbered by the reference), its content (approved: an emergency waits for no one), one
schedule per channel firing now at emergency priority, and its log entries; then fires it,
so it goes out as soon as the senders see it. Which channels, and what each does when it
ends early, is the channels' own business (`ChannelPlugin.emergency_options`,
`end_emergency`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from channels import registry
from channels.endpoints import resolve_targets, test_addresses
from channels.registry import EmergencyCall, EmergencyEnd
from channels.states import EXPIRED, WAITING
from content.media import asset_row, media_dir, store_audio
from content.models import APPROVED, ContentItem, ContentVersion, MediaAsset
from content.speech import SYNTHESISED
from content.versions import media_columns, version_checksum
from coso.clock import as_utc, local_text, zone
from coso.config import Settings
from coso.db import write
from coso.errors import InputError
from coso.units import unit_tree
from dispatcher.emergency.request import (
    EmergencyRequest,
    check_channels,
    check_text,
    check_title,
    check_units,
    check_until,
)
from dispatcher.emergency.speech import EmergencyAudio, audio_for
from dispatcher.fanout import fan_out_pending
from dispatcher.host import EngineHost
from dispatcher.models import Delivery
from dispatcher.transitions import append_log, move_where
from schedules.adhoc import blast_schedule
from schedules.emergencies import (
    ACTIVE,
    CANCELLED,
    DRILL_LABEL,
    Emergency,
    labelled,
    reference_text,
)
from schedules.firing import fire_due
from schedules.models import EMERGENCY, Plan, Schedule

log = logging.getLogger(__name__)

E, P, S, D = Emergency.__table__, Plan.__table__, Schedule.__table__, Delivery.__table__
C = ContentItem.__table__
NO_MEDIA = {
    "media_sha256": None,
    "media_file_name": None,
    "media_duration_seconds": None,
    "media_loudness_lufs": None,
    "media_size_bytes": None,
    "media_source_name": None,
}


@dataclass(frozen=True)
class Checked:
    """A request with every field checked, and what it resolves to."""

    text: str
    title: str
    units: list[str]
    targets: dict[str, dict[str, list[str]]]  # channel → its schedule's targets
    until: datetime
    audio: EmergencyAudio | None
    request: EmergencyRequest


def check(engine: Engine, settings: Settings, request: EmergencyRequest, now: datetime) -> Checked:
    """Every field of the request, or an InputError naming the first bad one."""
    text = check_text(request.text)
    title = check_title(request.title, text)
    units = check_units(unit_tree(engine), list(request.units))
    chosen = check_channels(settings, request.channels)
    until = check_until(request.until, now, settings)
    targets = channel_targets(engine, settings, chosen, units, request.drill)
    audio = audio_for(settings, request, text, sorted(targets))
    return Checked(text, title, units, targets, until, audio, request)


def channel_targets(
    engine: Engine, settings: Settings, chosen: list[str] | None, units: list[str], drill: bool
) -> dict[str, dict[str, list[str]]]:
    """Each channel's targets: every endpoint in the units (a drill: the test endpoints
    only). A channel named that has none there is an error; of all, those that have some."""
    found: dict[str, dict[str, list[str]]] = {}
    for name in chosen if chosen is not None else registry.configured(settings):
        reached = resolve_targets(engine, name, {"units": units})
        if drill:
            addresses = test_addresses(engine, name, [eid for eid, _ in reached])
            if addresses:
                found[name] = {"endpoints": addresses}
        elif reached:
            found[name] = {"units": list(units)}
        if name not in found and chosen is not None:
            what = "điểm nhận thử nghiệm" if drill else "điểm nhận"
            raise InputError("channels", name, f"không có {what} nào ở {', '.join(units)}")
    if not found:
        what = "điểm nhận thử nghiệm (test)" if drill else "điểm nhận"
        raise InputError("units", ", ".join(units), f"không có {what} nào trên kênh nào")
    return found


def declare(
    engine: Engine, settings: Settings, request: EmergencyRequest, now: datetime, actor: str
) -> str:
    """Declare an emergency; its reference ("KC-0001/2026"). Nothing is written when a field
    is bad."""
    checked = check(engine, settings, request, now)
    written: list[Path] = []
    for _attempt in range(5):  # two declared at the same moment take the next number
        try:
            ref = _write(engine, settings, checked, now, actor, written)
            break
        except IntegrityError:
            log.info("emergency number taken by another declaration; taking the next")
    else:
        raise InputError("reference", "", "không cấp được số hiệu; thử lại")
    go_now(engine, settings, ref, now)
    return ref


def go_now(engine: Engine, settings: Settings, ref: str, now: datetime) -> None:
    """Fire the emergency's schedules and fan them out now, so the senders (in this process
    or in `coso serve`) find its deliveries at their next look, not at the timer's next
    pass. Safe beside the timer: occurrences and deliveries are unique."""
    with engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(S.c.id)
                .join(E, E.c.plan_id == S.c.plan_id)
                .where(E.c.reference == ref, S.c.enabled.is_(True))
            )
        )
    if ids:
        fire_due(engine, now, ids=ids)
        fan_out_pending(engine, now, settings.dispatcher.fanout_batch)


def _write(
    engine: Engine,
    settings: Settings,
    checked: Checked,
    now: datetime,
    actor: str,
    written: list[Path],
) -> str:
    tz = settings.timer.default_zone
    local = as_utc(now).astimezone(zone(tz))
    year = local.year
    request = checked.request
    try:
        with write(engine) as conn:
            number = (conn.scalar(select(func.max(E.c.number)).where(E.c.year == year)) or 0) + 1
            ref = reference_text(number, year, settings.emergency.prefix)
            plan_id = conn.execute(
                P.insert().returning(P.c.id),
                [
                    {
                        "number": ref,
                        "title": labelled(f"Khẩn cấp: {checked.title}", request.drill),
                        "issuer": actor,
                        "organisation_id": None,
                        "issued_on": local.date(),
                        "period_start": local.date(),
                        "period_end": as_utc(checked.until).astimezone(zone(tz)).date(),
                        "zone": tz,
                        "created_at": now,
                    }
                ],
            ).scalar_one()
            conn.execute(
                E.insert(),
                [
                    {
                        "reference": ref,
                        "year": year,
                        "number": number,
                        "plan_id": plan_id,
                        "title": checked.title,
                        "text": checked.text,
                        "units": checked.units,
                        "channels": sorted(checked.targets),
                        "until": checked.until,
                        "drill": request.drill,
                        "state": ACTIVE,
                        "source": request.source,
                        "declared_by": actor,
                        "declared_at": now,
                        "skip_opt_outs": request.skip_opt_outs,
                        "cancel_sms": request.cancel_sms,
                        "version": 1,
                        "updated_at": now,
                    }
                ],
            )
            plan = conn.execute(select(P).where(P.c.id == plan_id)).one()
            _send_version(conn, settings, plan, ref, checked, 1, now, actor, written)
            detail = _with_audio(checked, _declared_detail(checked, actor))
            _log_each(conn, plan_id, checked.targets, now, actor, "emergency_declared", detail)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        written.clear()
        raise
    return ref


def _send_version(
    conn: Any,
    settings: Settings,
    plan: Any,
    ref: str,
    checked: Checked,
    version: int,
    now: datetime,
    actor: str,
    written: list[Path],
) -> list[int]:
    """The content of this version and one schedule per channel, firing now."""
    request = checked.request
    key = f"canh-bao-{version}"
    title = labelled(checked.title, request.drill)
    body = _literal(labelled(checked.text, request.drill))
    content_id = conn.execute(
        C.insert().returning(C.c.id),
        [
            {
                "plan_id": plan.id,
                "key": key,
                "kind": "audio" if checked.audio else "text",
                "title": _literal(title),
                "body": body,
                "state": APPROVED,
                "approved_by": actor,
                "approved_at": now,
                "created_at": now,
                "version": 1,
            }
        ],
    ).scalar_one()
    media = dict(NO_MEDIA)
    if checked.audio is not None:
        audio = checked.audio
        name, new = store_audio(settings.media, audio.prepared)
        if new:
            written.append(media_dir(settings.media) / name)
        asset = asset_row(content_id, audio.prepared, name, audio.source_name, now, audio.voice)
        conn.execute(MediaAsset.__table__.insert(), [asset])
        media = media_columns(asset)
        if audio.voice:  # the service log says the loudspeakers play speech, as speech_for does
            log.info(
                "%s bản %d: %s (%s), %.1f s, %.1f LUFS, sha256 %s",
                ref,
                version,
                SYNTHESISED,
                audio.voice,
                audio.prepared.duration_seconds,
                audio.prepared.loudness_lufs,
                audio.prepared.sha256[:12],
            )
    conn.execute(
        ContentVersion.__table__.insert(),
        [
            {
                "content_id": content_id,
                "version": 1,
                "title": _literal(title),
                "body": body,
                **media,
                "checksum": version_checksum(_literal(title), body, media["media_sha256"]),
                "state": APPROVED,
                "edited_by": actor,
                "edited_at": now,
                "approved_by": actor,
                "approved_at": now,
            }
        ],
    )
    validity = max(as_utc(checked.until) - as_utc(now), timedelta(seconds=1))
    call = EmergencyCall(ref, request.drill, request.skip_opt_outs)
    ids = []
    for channel, targets in sorted(checked.targets.items()):
        plugin = registry.get(channel)
        options = (
            plugin.emergency_options(registry.settings_of(settings, channel), call)
            if plugin.emergency_options
            else None
        )
        row = blast_schedule(
            plan,
            content_id,
            channel,
            targets,
            now,
            EMERGENCY,
            validity,
            options,
            f"{ref} · {channel}" + (f" · {DRILL_LABEL}" if request.drill else ""),
        )
        ids.append(
            conn.execute(
                S.insert().returning(S.c.id), [row.model_dump(exclude={"id"})]
            ).scalar_one()
        )
    return ids


def _literal(text: str) -> str:
    """Words as written: nothing in them is read as a template."""
    if "{" not in text and "%" not in text:
        return text
    return "{% raw %}" + text.replace("{% endraw %}", "{ % endraw % }") + "{% endraw %}"


def _with_audio(checked: Checked, detail: str | dict[str, str]) -> dict[str, str]:
    """Each channel's log detail; a channel that plays sound's says what it plays (speech:
    labelled as synthesised, with its voice)."""
    found = {c: detail if isinstance(detail, str) else detail.get(c, "") for c in checked.targets}
    if checked.audio is not None:
        for channel in found:
            if registry.get(channel).needs_audio:
                found[channel] = f"{found[channel]}; {checked.audio.note()}"
    return found


def _declared_detail(checked: Checked, actor: str) -> str:
    request = checked.request
    parts = [
        f"{'DIỄN TẬP · ' if request.drill else ''}{checked.title}",
        f"đơn vị {', '.join(checked.units)}",
        f"nguồn {request.source}",
    ]
    if request.skip_opt_outs:
        parts.append(f"gửi cả số đã từ chối nhận (do {actor} chọn)")
    return "; ".join(parts)


def _log_each(
    conn: Any,
    plan_id: int,
    channels: Any,
    now: datetime,
    actor: str,
    event: str,
    detail: str | dict[str, str],
) -> None:
    """One entry per channel under the emergency's plan (its reference)."""
    append_log(
        conn,
        [
            {
                "at": now,
                "plan_id": plan_id,
                "channel": channel,
                "event": event,
                "actor": actor,
                "detail": detail if isinstance(detail, str) else detail.get(channel, ""),
            }
            for channel in sorted(channels)
        ],
    )


def _row(engine: Engine, ref: str) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(E).where(E.c.reference == ref.strip())).first()
    if row is None:
        raise InputError("reference", ref, "không có tin khẩn cấp mang số hiệu này")
    return row


def _schedules(engine: Engine, plan_id: int) -> dict[str, list[int]]:
    """The emergency's enabled schedules, by channel."""
    found: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for sid, channel in conn.execute(
            select(S.c.id, S.c.channel).where(S.c.plan_id == plan_id, S.c.enabled.is_(True))
        ):
            found.setdefault(channel, []).append(sid)
    return found


def _end(
    engine: Engine,
    settings: Settings,
    row: Any,
    now: datetime,
    actor: str,
    notice: str | None,
    why: str,
) -> dict[str, str]:
    """Stop the emergency's current version everywhere: what has not gone out expires,
    its schedules stop, and each channel ends it its own way. What each did, by channel."""
    schedules = _schedules(engine, row.plan_id)
    every = [sid for ids in schedules.values() for sid in ids]
    with write(engine) as conn:
        conn.execute(sql_update(S).where(S.c.id.in_(every)).values(enabled=False, updated_at=now))
        move_where(
            conn,
            and_(D.c.schedule_id.in_(every), D.c.state.in_(WAITING)),
            EXPIRED,
            at=now,
            event=EXPIRED,
            actor=actor,
            detail=why,
        )
        plan = conn.execute(select(P).where(P.c.id == row.plan_id)).one()
    host = EngineHost(engine, settings, _FixedClock(now))
    done: dict[str, str] = {}
    for channel, ids in sorted(schedules.items()):
        plugin = registry.plugins().get(channel)
        if plugin is None or plugin.end_emergency is None:
            done[channel] = why
            continue
        targets, options = _targets_of(engine, ids[-1])
        end = EmergencyEnd(
            reference=row.reference,
            plan=plan,
            schedule_ids=tuple(ids),
            now=now,
            actor=actor,
            notice=notice,
            targets=targets,
            options=options,
        )
        try:
            done[channel] = (
                f"{why}: {plugin.end_emergency(host, registry.settings_of(settings, channel), end)}"
            )
        except Exception as exc:  # one channel's failure must not stop the others
            log.exception("channel %s could not end emergency %s", channel, row.reference)
            done[channel] = f"{why}: lỗi khi dừng trên kênh này: {exc}"
    return done


def _targets_of(engine: Engine, schedule_id: int) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """A schedule's targets and options."""
    with engine.connect() as conn:
        row = conn.execute(select(S.c.targets, S.c.options).where(S.c.id == schedule_id)).one()
    return dict(row.targets or {}), dict(row.options or {})


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def cancel(
    engine: Engine,
    settings: Settings,
    ref: str,
    *,
    now: datetime,
    actor: str,
    note: str | None = None,
) -> None:
    """Call an emergency off: players stop it, boards clear, the bulletin unpins it, and
    people texted the warning are told (when it was declared so)."""
    row = _row(engine, ref)
    if row.state == CANCELLED:
        raise InputError("reference", row.reference, "tin khẩn cấp này đã được huỷ")
    notice = _notice(engine, settings, row, now, actor) if row.cancel_sms else None
    done = _end(engine, settings, row, now, actor, notice, "đã huỷ")
    with write(engine) as conn:
        conn.execute(
            sql_update(E)
            .where(E.c.id == row.id)
            .values(
                state=CANCELLED,
                cancelled_at=now,
                cancelled_by=actor,
                note=(note or "").strip() or None,
                updated_at=now,
            )
        )
        if note and note.strip():
            done = {c: f"{d}; ghi chú: {note.strip()}" for c, d in done.items()}
        _log_each(conn, row.plan_id, done, now, actor, "emergency_cancelled", done)
    go_now(engine, settings, row.reference, now)


def _notice(engine: Engine, settings: Settings, row: Any, now: datetime, actor: str) -> str:
    """The plan's content item that says the warning is called off."""
    key = f"huy-{row.version}"
    words = labelled(
        f"HUỶ tin khẩn cấp {row.reference}: {row.title}. Tin này không còn hiệu lực.", row.drill
    )
    with write(engine) as conn:
        exists = conn.scalar(select(C.c.id).where(C.c.plan_id == row.plan_id, C.c.key == key))
        if exists is None:
            content_id = conn.execute(
                C.insert().returning(C.c.id),
                [
                    {
                        "plan_id": row.plan_id,
                        "key": key,
                        "kind": "text",
                        "title": _literal(words),
                        "body": _literal(words),
                        "state": APPROVED,
                        "approved_by": actor,
                        "approved_at": now,
                        "created_at": now,
                        "version": 1,
                    }
                ],
            ).scalar_one()
            conn.execute(
                ContentVersion.__table__.insert(),
                [
                    {
                        "content_id": content_id,
                        "version": 1,
                        "title": _literal(words),
                        "body": _literal(words),
                        **NO_MEDIA,
                        "checksum": version_checksum(_literal(words), _literal(words), None),
                        "state": APPROVED,
                        "edited_by": actor,
                        "edited_at": now,
                        "approved_by": actor,
                        "approved_at": now,
                    }
                ],
            )
    return key


def update(
    engine: Engine,
    settings: Settings,
    ref: str,
    *,
    text: str | None = None,
    units: list[str] | None = None,
    until: datetime | None = None,
    title: str | None = None,
    now: datetime,
    actor: str,
) -> None:
    """Change an active emergency. A new end alone moves it; new words or units are a new
    version: the old one stops everywhere (no cancellation text) and the new one goes out.
    A new title (a CAP Update's headline) goes with new words or units."""
    row = _row(engine, ref)
    if row.state == CANCELLED:
        raise InputError("reference", row.reference, "tin khẩn cấp này đã được huỷ")
    if text is None and units is None and until is None:
        raise InputError("text", "", "không có gì để cập nhật: cho --text, --units hoặc --until")
    new_until = check_until(until, now, settings) if until is not None else as_utc(row.until)
    if as_utc(new_until) <= as_utc(now):
        raise InputError("until", "", "tin đã hết hạn: hãy phát tin mới")
    if text is None and units is None:
        _move_end(engine, row, new_until, now, actor)
        return
    request = EmergencyRequest(
        text=text if text is not None else row.text,
        units=units if units is not None else list(row.units),
        channels=list(row.channels),
        until=new_until,
        drill=row.drill,
        title=_new_title(row, text, title),
        source=row.source,
        skip_opt_outs=row.skip_opt_outs,
        cancel_sms=row.cancel_sms,
        audio=None,
    )
    if _has_audio(engine, row):
        raise InputError(
            "text", text or "", "tin có âm thanh: huỷ tin này và phát tin mới với âm thanh mới"
        )
    checked = check(engine, settings, request, now)
    done = _end(engine, settings, row, now, actor, None, "thay bằng bản cập nhật")
    written: list[Path] = []
    version = row.version + 1
    try:
        with write(engine) as conn:
            plan = conn.execute(select(P).where(P.c.id == row.plan_id)).one()
            _send_version(
                conn, settings, plan, row.reference, checked, version, now, actor, written
            )
            conn.execute(
                sql_update(E)
                .where(E.c.id == row.id)
                .values(
                    text=checked.text,
                    title=checked.title,
                    units=checked.units,
                    channels=sorted(checked.targets),
                    until=checked.until,
                    version=version,
                    updated_at=now,
                )
            )
            detail = _with_audio(
                checked,
                {
                    c: f"bản {version}: {checked.title}; {done.get(c, 'kênh mới')}"
                    for c in checked.targets
                },
            )
            _log_each(conn, row.plan_id, checked.targets, now, actor, "emergency_updated", detail)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    go_now(engine, settings, row.reference, now)


def _new_title(row: Any, text: str | None, title: str | None) -> str | None:
    """An update's title: the one given; else a title of its own stays, and one taken from
    the old words (None) follows the new ones."""
    if title is not None and title.strip():
        return title
    if text is None or row.title != check_title(None, row.text):
        return str(row.title)
    return None


def _has_audio(engine: Engine, row: Any) -> bool:
    """Whether the emergency plays a recording it was given (speech is read again from the
    new words)."""
    A = MediaAsset.__table__
    with engine.connect() as conn:
        return (
            conn.scalar(
                select(func.count())
                .select_from(
                    MediaAsset.__table__.join(C, C.c.id == MediaAsset.__table__.c.content_id)
                )
                .where(C.c.plan_id == row.plan_id, A.c.voice.is_(None))
            )
            or 0
        ) > 0


def _move_end(engine: Engine, row: Any, until: datetime, now: datetime, actor: str) -> None:
    """A new end: the schedules' validity, and the expiry of what has not gone out yet,
    follow it (players and boards keep the end they were given)."""
    schedules = [sid for ids in _schedules(engine, row.plan_id).values() for sid in ids]
    with write(engine) as conn:
        for sid, start, tz in conn.execute(
            select(S.c.id, S.c.start_local, S.c.zone).where(S.c.id.in_(schedules))
        ).all():
            began = as_utc(datetime.fromisoformat(start).replace(tzinfo=zone(tz)))
            seconds = max(1, int((until - began).total_seconds()))
            conn.execute(
                sql_update(S).where(S.c.id == sid).values(validity_seconds=seconds, updated_at=now)
            )
        conn.execute(
            sql_update(D)
            .where(D.c.schedule_id.in_(schedules), D.c.state.in_(WAITING))
            .values(expires_at=until)
        )
        conn.execute(sql_update(E).where(E.c.id == row.id).values(until=until, updated_at=now))
        plan_zone = conn.scalar(select(P.c.zone).where(P.c.id == row.plan_id))
        _log_each(
            conn,
            row.plan_id,
            row.channels,
            now,
            actor,
            "emergency_updated",
            f"kết thúc lúc {local_text(until, plan_zone)}",
        )
