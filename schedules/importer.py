"""Import a plan file: check every part first, then write it all in one transaction."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from channels import registry
from channels.endpoints import (
    Endpoint,
    EndpointGroup,
    GroupMember,
    endpoint_addresses,
    group_names,
)
from channels.registry import check_options
from content.models import APPROVED, ContentItem
from content.render import check_template
from coso.clock import zone
from coso.config import Settings
from coso.db import writer
from coso.durations import parse_duration
from coso.errors import InputError, InputErrors
from coso.units import Organisation, UnitTree, unit_tree
from schedules.models import Plan, PlanTarget, Schedule
from schedules.planfile import PlanFile, field_path, locate, read_plan_file
from schedules.timing import parse_rrule


class _Checker:
    """Collects every error of a plan file with its line, instead of stopping at the first."""

    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text
        self.errors: list[InputError] = []

    def fail(self, loc: tuple[object, ...], value: object, reason: str) -> None:
        self.errors.append(
            InputError(
                field_path(loc), value, reason, source=self.source, line=locate(self.text, loc)
            )
        )


def import_plan_file(engine: Engine, settings: Settings, path: Path, now: datetime) -> Plan:
    plan_file, text = read_plan_file(path)
    return import_plan(engine, settings, plan_file, now, source=str(path), text=text)


def import_plan(
    engine: Engine,
    settings: Settings,
    pf: PlanFile,
    now: datetime,
    *,
    source: str = "<plan>",
    text: str = "",
) -> Plan:
    check = _Checker(source, text)
    _check(engine, settings, pf, check)
    if check.errors:
        raise InputErrors(check.errors)
    return _write(engine, settings, pf, now)


def _known_units(
    units: UnitTree, check: _Checker, loc: tuple[object, ...], codes: list[str]
) -> None:
    for code in codes:
        try:
            units.below(code)
        except InputError as exc:
            check.fail(loc, code, exc.reason)


def _check(engine: Engine, settings: Settings, pf: PlanFile, check: _Checker) -> None:
    units = unit_tree(engine)
    head = pf.plan
    with engine.connect() as conn:
        if conn.scalar(select(Plan.__table__.c.id).where(Plan.__table__.c.number == head.number)):
            check.fail(("plan", "number"), head.number, "a plan with this number already exists")
    plan_zone = head.zone or settings.timer.default_zone
    try:
        zone(plan_zone)
    except ValueError as exc:
        check.fail(("plan", "zone"), plan_zone, str(exc))
    if head.period_end < head.period_start:
        check.fail(("plan", "period_end"), str(head.period_end), "is before period_start")

    for i, target in enumerate(pf.targets):
        _channel(check, ("targets", i, "channel"), target.channel)
        _known_units(units, check, ("targets", i, "units"), target.units)

    keys: dict[str, str] = {}
    for i, item in enumerate(pf.content):
        if item.key in keys:
            check.fail(("content", i, "key"), item.key, "appears twice")
        keys[item.key] = item.state
        for part in ("title", "body"):
            try:
                check_template(part, getattr(item, part))
            except InputError as exc:
                check.fail(("content", i, part), exc.value, exc.reason)

    file_endpoints: dict[str, set[str]] = {c: set() for c in registry.names()}
    for i, ep in enumerate(pf.endpoints):
        if _channel(check, ("endpoints", i, "channel"), ep.channel):
            file_endpoints[ep.channel].add(ep.address)
        if ep.unit:
            try:
                units.current_for(ep.unit)
            except InputError as exc:
                check.fail(("endpoints", i, "unit"), ep.unit, exc.reason)

    existing_groups = group_names(engine)
    file_groups: set[str] = set()
    for i, group in enumerate(pf.groups):
        if group.name in existing_groups or group.name in file_groups:
            check.fail(("groups", i, "name"), group.name, "a group with this name already exists")
        file_groups.add(group.name)
        if _channel(check, ("groups", i, "channel"), group.channel):
            _known_endpoints(
                engine,
                check,
                ("groups", i, "endpoints"),
                group.channel,
                group.endpoints,
                file_endpoints[group.channel],
            )
        _known_units(units, check, ("groups", i, "units"), group.units)

    for i, sch in enumerate(pf.schedules):
        loc = ("schedules", i)
        if sch.content not in keys:
            check.fail(
                (*loc, "content"), sch.content, f"no content with this key; have {sorted(keys)}"
            )
        elif sch.enabled and keys[sch.content] != APPROVED:
            check.fail(
                (*loc, "content"),
                sch.content,
                f"content is {keys[sch.content]!r}; only approved content can be scheduled",
            )
        if not _channel(check, (*loc, "channel"), sch.channel):
            continue
        plugin = registry.get(sch.channel)
        if sch.enabled and not plugin.configured(registry.settings_of(settings, sch.channel)):
            ready = ", ".join(registry.configured(settings))
            check.fail(
                (*loc, "channel"),
                sch.channel,
                f"this channel is not set up ({plugin.not_configured_hint or 'see its settings'});"
                f" set up: {ready}",
            )
        try:
            check_options(sch.channel, sch.options)
        except InputError as exc:
            check.fail((*loc, *exc.field.split(".")), exc.value, exc.reason)
        spec = sch.targets
        if not (spec.endpoints or spec.groups or spec.units):
            check.fail(
                (*loc, "targets"),
                spec.model_dump(),
                "selects nothing: give endpoints, groups or units",
            )
        _known_endpoints(
            engine,
            check,
            (*loc, "targets", "endpoints"),
            sch.channel,
            spec.endpoints,
            file_endpoints[sch.channel],
        )
        for name in spec.groups:
            if name not in existing_groups and name not in file_groups:
                check.fail((*loc, "targets", "groups"), name, "no group with this name")
        _known_units(units, check, (*loc, "targets", "units"), spec.units)
        if sch.rrule is not None:
            try:
                parse_rrule(sch.rrule, sch.start.replace(tzinfo=None))
            except ValueError as exc:
                check.fail((*loc, "rrule"), sch.rrule, str(exc))
        if sch.start.tzinfo is not None:
            check.fail(
                (*loc, "start"),
                sch.start.isoformat(),
                "give local time without offset; the plan's zone applies",
            )
        for name in ("validity", "misfire_grace"):
            value = getattr(sch, name)
            if value is not None:
                try:
                    parse_duration(value)
                except ValueError as exc:
                    check.fail((*loc, name), value, str(exc))


def _channel(check: _Checker, loc: tuple[object, ...], channel: str) -> bool:
    try:
        registry.get(channel)
    except InputError as exc:
        check.fail(loc, channel, exc.reason)
        return False
    return True


def _known_endpoints(
    engine: Engine,
    check: _Checker,
    loc: tuple[object, ...],
    channel: str,
    addresses: list[str],
    in_file: set[str],
) -> None:
    missing = set(addresses) - in_file
    if missing:
        missing -= endpoint_addresses(engine, channel, missing)
    for address in sorted(missing):
        check.fail(loc, address, f"no {channel} endpoint with this address")


def _until(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    return datetime.combine(value, time(23, 59, 59)).isoformat()


def _write(engine: Engine, settings: Settings, pf: PlanFile, now: datetime) -> Plan:
    units = unit_tree(engine)
    head = pf.plan
    plan_zone = head.zone or settings.timer.default_zone
    with Session(writer(engine), expire_on_commit=False) as session:
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
            zone=plan_zone,
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
                    until_local=_until(sch.until),
                    exdates_local=[x.replace(tzinfo=None).isoformat() for x in sch.exdates],
                    zone=plan_zone,
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
        session.commit()
    return plan
