"""Write a checked plan file in one transaction; its parts, for `update` to add new ones."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.registry import check_options
from content.media import asset_row, media_dir, store_audio
from content.models import APPROVED, DRAFT, ContentItem, ContentVersion, MediaAsset
from content.versions import NO_MEDIA, media_columns, version_checksum
from coso.clock import zone
from coso.db import writer
from coso.durations import parse_duration
from coso.units import Organisation
from coso.weektimes import clock_text
from schedules.models import Plan, PlanTarget, Schedule
from schedules.plan_import.checker import Context
from schedules.planfile import ContentEntry, EndpointEntry, GroupEntry, ScheduleEntry, TargetEntry
from schedules.session_store import drop_future_placements, write_placements
from schedules.sessions import BroadcastSession, Instance, SessionException


def until_text(value: datetime | date | None) -> str | None:
    """A schedule's last local time as stored: a date means the end of that day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    return datetime.combine(value, time(23, 59, 59)).isoformat()


def write(ctx: Context, now: datetime) -> Plan:
    """All rows in one transaction; audio files go to the media folder as their content is
    written, and the ones it added are removed again if the transaction does not commit."""
    added: list[Path] = []
    try:
        return _write(ctx, now, added)
    except BaseException:
        for path in added:
            path.unlink(missing_ok=True)
        raise


def _write(ctx: Context, now: datetime, added: list[Path]) -> Plan:
    pf = ctx.pf
    head = pf.plan
    with Session(writer(ctx.engine), expire_on_commit=False) as session:
        organisation_id = organisation(session, head.organisation)
        plan = Plan(
            number=head.number,
            title=head.title,
            issuer=head.issuer,
            organisation_id=organisation_id,
            issued_on=head.issued_on,
            period_start=head.period_start,
            period_end=head.period_end,
            zone=ctx.zone,
            created_at=now,
        )
        session.add(plan)
        session.flush()
        for target in pf.targets:
            add_target(session, plan.id, target)  # type: ignore[arg-type]
        content_ids = {
            item.key: add_content(session, ctx, plan.id, item, now, added)  # type: ignore[arg-type]
            for item in pf.content
        }
        for ep in pf.endpoints:
            add_endpoint(session, ctx, ep, now)
        session.flush()
        for group in pf.groups:
            add_group(session, group)
        add_sessions(session, ctx, plan.id, now)  # type: ignore[arg-type]
        for i, sch in enumerate(pf.schedules):
            row = Schedule(
                plan_id=plan.id,
                organisation_id=organisation_id,
                content_id=content_ids[sch.content],
                **schedule_values(ctx, sch),
                fired_through=now,
                updated_at=now,
            )
            session.add(row)
            if i in ctx.placements:
                session.flush()
                add_placements(session, row.id, ctx.placements[i], now)  # type: ignore[arg-type]
        session.commit()
    return plan


def organisation(session: Session, name: str | None) -> int | None:
    """The id of the organisation called `name`, added when new."""
    if not name:
        return None
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
    return org.id


def add_target(session: Session, plan_id: int, target: TargetEntry) -> None:
    session.add(
        PlanTarget(
            plan_id=plan_id,
            channel=target.channel,
            count=target.count,
            per=target.per,
            unit_codes=target.units,
            note=target.note,
        )
    )


def add_content(
    session: Session,
    ctx: Context,
    plan_id: int,
    item: ContentEntry,
    now: datetime,
    added: list[Path],
) -> int:
    """A new content item as its version 1, with the audio the file brought (stored in the
    media folder; `added` lists the files this wrote). Returns its id."""
    approved = item.state == APPROVED
    row = ContentItem(
        plan_id=plan_id,
        key=item.key,
        kind=item.kind,
        title=item.title,
        body=item.body,
        state=item.state,
        created_at=now,
        approved_by=item.approved_by if approved else None,
        approved_at=now if approved else None,
    )
    session.add(row)
    session.flush()
    media = dict(NO_MEDIA)
    if item.key in ctx.audio:
        asset = store_prepared(ctx, row.id, item.key, now, added)  # type: ignore[arg-type]
        session.add(MediaAsset(**asset))
        media = media_columns(asset)
    session.add(
        ContentVersion(
            content_id=row.id,
            version=1,
            title=item.title,
            body=item.body,
            **media,
            checksum=version_checksum(item.title, item.body, media["media_sha256"]),
            state=APPROVED if approved else DRAFT,
            edited_by="",
            edited_at=now,
            approved_by=row.approved_by,
            approved_at=row.approved_at,
        )
    )
    return row.id  # type: ignore[return-value]


def store_prepared(
    ctx: Context, content_id: int, key: str, now: datetime, added: list[Path]
) -> dict[str, object]:
    """The audio the file brought for content `key`, kept in the media folder: its
    media_asset row."""
    prepared, source_name = ctx.audio[key]
    name, new = store_audio(ctx.settings.media, prepared)
    if new:
        added.append(media_dir(ctx.settings.media) / name)
    return asset_row(content_id, prepared, name, source_name, now)


def add_endpoint(session: Session, ctx: Context, ep: EndpointEntry, now: datetime) -> bool:
    """Add the endpoint unless it is known (then left as it is); whether it was added."""
    exists = session.exec(
        select(Endpoint).where(Endpoint.channel == ep.channel, Endpoint.address == ep.address)
    ).first()
    if exists is not None:
        return False
    unit = ctx.units.current_for(ep.unit) if ep.unit else None
    session.add(
        Endpoint(
            channel=ep.channel,
            address=ep.address,
            name=ep.name,
            unit_code=unit,
            test=ep.test,
            latitude=ep.latitude,
            longitude=ep.longitude,
            created_at=now,
        )
    )
    return True


def add_group(session: Session, group: GroupEntry) -> None:
    """A new group with its members (endpoints already flushed)."""
    row = EndpointGroup(
        name=group.name,
        channel=group.channel,
        unit_codes=group.units,
        description=group.description,
    )
    session.add(row)
    session.flush()
    for address in group.endpoints:
        endpoint = session.exec(
            select(Endpoint).where(Endpoint.channel == group.channel, Endpoint.address == address)
        ).one()
        session.add(GroupMember(group_id=row.id, endpoint_id=endpoint.id))


def add_sessions(session: Session, ctx: Context, plan_id: int, now: datetime) -> None:
    """The file's new sessions and exceptions."""
    for d in ctx.session_defs:
        session.add(
            BroadcastSession(
                scope=d.scope,
                name=d.name,
                weekdays=sorted(d.weekdays),
                start=clock_text(d.start),
                minutes=d.minutes,
                plan_id=plan_id,
                created_at=now,
            )
        )
    for c in ctx.session_changes:
        session.add(
            SessionException(
                day=c.day,
                scope=c.scope,
                session=c.session,
                kind=c.kind,
                start=clock_text(c.start) if c.start else None,
                minutes=c.minutes,
                note=c.note,
                plan_id=plan_id,
                created_at=now,
            )
        )
    session.flush()


def add_placements(
    session: Session, schedule_id: int, placed: list[tuple[Instance, int]], now: datetime
) -> None:
    """Where a queued schedule's item went (its future ones replaced, on an update)."""
    conn = session.connection()
    drop_future_placements(conn, schedule_id, now)
    write_placements(conn, schedule_id, placed, now)


def queue_values(ctx: Context, sch: ScheduleEntry) -> dict[str, Any]:
    """A queued schedule's queue, its explicit times (the sessions it was placed in, local)
    and its validity (the longest of those sessions: an item may wait for those before
    it, never past the session's end)."""
    if sch.queue is None:
        return {"queue": None, "rdates_local": []}
    index = next(i for i, s in enumerate(ctx.pf.schedules) if s is sch)
    placed = ctx.placements.get(index, [])
    tz = zone(ctx.zone)
    times = sorted({inst.at for inst, _ in placed})
    values: dict[str, Any] = {
        "queue": sch.queue.model_dump(),
        "rdates_local": [t.astimezone(tz).replace(tzinfo=None).isoformat() for t in times],
    }
    if placed:
        values["validity_seconds"] = max(inst.seconds for inst, _ in placed)
    return values


def schedule_values(ctx: Context, sch: ScheduleEntry) -> dict[str, Any]:
    """A checked schedule of the file as its schedule row keeps it (all but the plan, the
    organisation, the content and the firing bookkeeping)."""
    settings = ctx.settings
    validity = sch.validity if sch.validity is not None else settings.timer.default_validity
    grace = (
        sch.misfire_grace if sch.misfire_grace is not None else settings.timer.default_misfire_grace
    )
    return {
        "name": sch.name,
        "channel": sch.channel,
        "targets": sch.targets.model_dump(),
        "start_local": sch.start.isoformat(),
        "rrule": sch.rrule,
        "until_local": until_text(sch.until),
        "exdates_local": [x.replace(tzinfo=None).isoformat() for x in sch.exdates],
        "zone": ctx.zone,
        "priority": sch.priority,
        "validity_seconds": int(parse_duration(validity).total_seconds()) or None,
        "misfire_grace_seconds": int(parse_duration(grace).total_seconds()),
        "resend_unknown": sch.resend_unknown,
        "options": check_options(sch.channel, sch.options),
        "rotation": list(sch.rotation),
        "rotation_policy": sch.policy if sch.rotation else None,
        "rotation_weights": {key: float(w) for key, w in sch.weights.items()},
        "enabled": sch.enabled,
    } | queue_values(ctx, sch)
