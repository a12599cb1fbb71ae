"""Write a checked plan file in one transaction."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

from sqlmodel import Session, select

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.registry import check_options
from content.media import asset_row, media_dir, store_audio
from content.models import APPROVED, ContentItem, MediaAsset
from coso.db import writer
from coso.durations import parse_duration
from coso.units import Organisation
from schedules.models import Plan, PlanTarget, Schedule
from schedules.plan_import.checker import Context


def until_text(value: datetime | date | None) -> str | None:
    """A schedule's last local time as stored: a date means the end of that day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    return datetime.combine(value, time(23, 59, 59)).isoformat()


def write(ctx: Context, now: datetime) -> Plan:
    """All rows in one transaction; audio files go to the media folder just before it
    commits, and the ones it added are removed again if it does not."""
    added: list[Path] = []
    try:
        return _write(ctx, now, added)
    except BaseException:
        for path in added:
            path.unlink(missing_ok=True)
        raise


def _write(ctx: Context, now: datetime, added: list[Path]) -> Plan:
    pf, settings, units = ctx.pf, ctx.settings, ctx.units
    head = pf.plan
    with Session(writer(ctx.engine), expire_on_commit=False) as session:
        organisation_id = None
        if head.organisation:
            org = session.exec(
                select(Organisation).where(Organisation.name == head.organisation)
            ).first()
            if org is None:
                org = Organisation(name=head.organisation)
                session.add(org)
                session.flush()
            organisation_id = org.id
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
            session.add(
                PlanTarget(
                    plan_id=plan.id,
                    channel=target.channel,
                    count=target.count,
                    per=target.per,
                    unit_codes=target.units,
                    note=target.note,
                )
            )
        content_ids: dict[str, int] = {}
        for item in pf.content:
            row = ContentItem(
                plan_id=plan.id,
                key=item.key,
                kind=item.kind,
                title=item.title,
                body=item.body,
                state=item.state,
                created_at=now,
                approved_by=item.approved_by if item.state == APPROVED else None,
                approved_at=now if item.state == APPROVED else None,
            )
            session.add(row)
            session.flush()
            content_ids[item.key] = row.id  # type: ignore[assignment]
        for ep in pf.endpoints:
            exists = session.exec(
                select(Endpoint).where(
                    Endpoint.channel == ep.channel, Endpoint.address == ep.address
                )
            ).first()
            if exists is None:
                unit = units.current_for(ep.unit) if ep.unit else None
                session.add(
                    Endpoint(
                        channel=ep.channel,
                        address=ep.address,
                        name=ep.name,
                        unit_code=unit,
                        created_at=now,
                    )
                )
        session.flush()
        for group in pf.groups:
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
                    select(Endpoint).where(
                        Endpoint.channel == group.channel, Endpoint.address == address
                    )
                ).one()
                session.add(GroupMember(group_id=row.id, endpoint_id=endpoint.id))
        for sch in pf.schedules:
            validity = sch.validity if sch.validity is not None else settings.timer.default_validity
            grace = (
                sch.misfire_grace
                if sch.misfire_grace is not None
                else settings.timer.default_misfire_grace
            )
            session.add(
                Schedule(
                    plan_id=plan.id,
                    organisation_id=organisation_id,
                    name=sch.name,
                    content_id=content_ids[sch.content],
                    channel=sch.channel,
                    targets=sch.targets.model_dump(),
                    start_local=sch.start.isoformat(),
                    rrule=sch.rrule,
                    until_local=until_text(sch.until),
                    exdates_local=[x.replace(tzinfo=None).isoformat() for x in sch.exdates],
                    zone=ctx.zone,
                    priority=sch.priority,
                    validity_seconds=int(parse_duration(validity).total_seconds()) or None,
                    misfire_grace_seconds=int(parse_duration(grace).total_seconds()),
                    resend_unknown=sch.resend_unknown,
                    options=check_options(sch.channel, sch.options),
                    enabled=sch.enabled,
                    fired_through=now,
                    updated_at=now,
                )
            )
        for key, (prepared, source_name) in ctx.audio.items():
            name, new = store_audio(settings.media, prepared)
            if new:
                added.append(media_dir(settings.media) / name)
            row = asset_row(content_ids[key], prepared, name, source_name, now)
            session.add(MediaAsset(**row))
        session.commit()
    return plan
