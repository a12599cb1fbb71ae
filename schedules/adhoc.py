"""Ad-hoc blasts (`coso sms send`): a one-off schedule in a plan, firing now, so the blast
is recorded against the plan like any scheduled item."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from channels.endpoints import resolve_targets
from channels.registry import check_options
from content.models import APPROVED, ContentItem
from coso.clock import as_utc, zone
from coso.db import write
from coso.errors import InputError
from schedules.models import PRIORITIES, Plan, Schedule

C = ContentItem.__table__


def find_content(engine: Engine, plan: Plan, key: str) -> ContentItem:
    with engine.connect() as conn:
        row = conn.execute(select(C).where(C.c.plan_id == plan.id, C.c.key == key)).first()
    if row is None:
        raise InputError("content", key, f"no content with this key in plan {plan.number}")
    return ContentItem(**row._mapping)


def add_blast(
    engine: Engine,
    plan: Plan,
    content_key: str,
    channel: str,
    targets: dict[str, list[str]],
    now: datetime,
    *,
    priority: str = "normal",
    validity: timedelta | None = None,
    options: dict[str, Any] | None = None,
    name: str | None = None,
) -> Schedule:
    """A schedule that fires once, now. Refuses unapproved content and empty targets."""
    if priority not in PRIORITIES:
        raise InputError("priority", priority, f"not one of {list(PRIORITIES)}")
    content = find_content(engine, plan, content_key)
    if content.state != APPROVED:
        raise InputError("content", content_key, f"is {content.state}; approve it first")
    if not resolve_targets(engine, channel, targets):
        raise InputError("to", targets, f"names no enabled {channel} endpoint")
    schedule = blast_schedule(
        plan, content.id or 0, channel, targets, now, priority, validity, options, name
    )
    with write(engine) as conn:
        result = conn.execute(
            Schedule.__table__.insert().returning(Schedule.__table__.c.id),
            [schedule.model_dump(exclude={"id"})],
        )
        schedule.id = result.scalar_one()
    return schedule


def blast_schedule(
    plan: Any,
    content_id: int,
    channel: str,
    targets: dict[str, list[str]],
    now: datetime,
    priority: str,
    validity: timedelta | None,
    options: dict[str, Any] | None,
    name: str | None,
) -> Schedule:
    """The schedule of a blast (not written): fires once, now, its options checked."""
    local = as_utc(now).astimezone(zone(plan.zone)).replace(microsecond=0, tzinfo=None)
    return Schedule(
        plan_id=plan.id,
        organisation_id=plan.organisation_id,
        name=name or f"{channel} blast {local:%d/%m/%Y %H:%M:%S}",
        content_id=content_id,
        channel=channel,
        targets=targets,
        start_local=local.isoformat(),
        zone=plan.zone,
        priority=priority,
        validity_seconds=int(validity.total_seconds()) if validity else None,
        misfire_grace_seconds=3600,
        options=check_options(channel, options),
        enabled=True,
        fired_through=as_utc(now) - timedelta(seconds=1),
        updated_at=now,
    )
