"""A stored plan as a plan file describes it, read once so the changes a file makes can be
worked out from data alone (`changes.plan_changes`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from content.models import ContentItem, ContentVersion, MediaAsset
from coso.db import chunks
from coso.units import Organisation
from schedules.models import Plan, PlanTarget, Schedule
from schedules.planfile import PlanFile
from schedules.timing import timing_of

# A schedule's columns a plan file sets (besides its content), compared one by one.
SCHEDULE_FIELDS = (
    "channel",
    "targets",
    "start_local",
    "rrule",
    "until_local",
    "exdates_local",
    "zone",
    "priority",
    "validity_seconds",
    "misfire_grace_seconds",
    "resend_unknown",
    "options",
    "rotation",
    "rotation_policy",
    "rotation_weights",
    "queue",
    "rdates_local",
    "enabled",
)
HEADER_FIELDS = (
    "title",
    "issuer",
    "organisation",
    "issued_on",
    "period_start",
    "period_end",
    "zone",
)
FAR = datetime(2200, 1, 1, tzinfo=UTC)  # after every time a schedule may have


@dataclass(frozen=True)
class StoredContent:
    id: int
    key: str
    kind: str
    state: str  # the item's: draft, approved, retired
    version: int  # what goes out (approved), or is shown (a draft item)
    latest: int  # its newest version: a draft waiting for approval when above `version`
    # the newest version's title, body and audio: what the file is compared with
    title: str
    body: str
    media_sha256: str | None
    has_audio: bool  # audio goes out with it now (media_asset)


@dataclass(frozen=True)
class StoredSchedule:
    id: int
    name: str
    content: str  # its content's key
    values: dict[str, Any]  # SCHEDULE_FIELDS
    finished: bool  # nothing left to fire: a one-off that fired, a rule past its end


@dataclass(frozen=True)
class StoredGroup:
    channel: str
    units: tuple[str, ...]
    endpoints: frozenset[str]
    description: str


@dataclass(frozen=True)
class StoredPlan:
    id: int
    number: str
    header: dict[str, Any]  # HEADER_FIELDS
    targets: tuple[tuple[int, tuple[Any, ...]], ...]  # (id, target_key)
    content: dict[str, StoredContent]
    schedules: tuple[StoredSchedule, ...]  # by id
    groups: dict[str, StoredGroup]  # those the file names that exist
    endpoints: frozenset[tuple[str, str]]  # (channel, address) of the file's that exist


def target_key(channel: str, count: int, per: str, units: list[str], note: str) -> tuple[Any, ...]:
    return (channel, count, per, tuple(units), note)


def load_stored_plan(conn: Connection, pf: PlanFile) -> StoredPlan | None:
    """The stored plan numbered as `pf` (None when there is none), with the groups and
    endpoints the file names that already exist."""
    P = Plan.__table__
    plan = conn.execute(select(P).where(P.c.number == pf.plan.number)).first()
    if plan is None:
        return None
    organisation = None
    if plan.organisation_id is not None:
        orgs = Organisation.__table__
        organisation = conn.scalar(select(orgs.c.name).where(orgs.c.id == plan.organisation_id))
    header = {
        "title": plan.title,
        "issuer": plan.issuer,
        "organisation": organisation,
        "issued_on": _day(plan.issued_on),
        "period_start": _day(plan.period_start),
        "period_end": _day(plan.period_end),
        "zone": plan.zone,
    }
    T = PlanTarget.__table__
    targets = tuple(
        (t.id, target_key(t.channel, t.count, t.per, list(t.unit_codes or []), t.note))
        for t in conn.execute(select(T).where(T.c.plan_id == plan.id).order_by(T.c.id))
    )
    content = _content(conn, plan.id)
    keys = {c.id: c.key for c in content.values()}
    S = Schedule.__table__
    schedules = tuple(
        StoredSchedule(
            id=s.id,
            name=s.name,
            content=keys[s.content_id],
            values={name: getattr(s, name) for name in SCHEDULE_FIELDS},
            finished=not timing_of(s).fire_times(s.fired_through, FAR, most=1),
        )
        for s in conn.execute(select(S).where(S.c.plan_id == plan.id).order_by(S.c.id))
    )
    return StoredPlan(
        id=plan.id,
        number=plan.number,
        header=header,
        targets=targets,
        content=content,
        schedules=schedules,
        groups=_groups(conn, [g.name for g in pf.groups]),
        endpoints=_endpoints(conn, [(e.channel, e.address) for e in pf.endpoints]),
    )


def _day(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def _content(conn: Connection, plan_id: int) -> dict[str, StoredContent]:
    C, V, M = ContentItem.__table__, ContentVersion.__table__, MediaAsset.__table__
    items = conn.execute(select(C).where(C.c.plan_id == plan_id).order_by(C.c.id)).all()
    ids = [c.id for c in items]
    newest: dict[int, Any] = {}
    for v in conn.execute(select(V).where(V.c.content_id.in_(ids)).order_by(V.c.version)):
        newest[v.content_id] = v
    playing = dict(
        conn.execute(select(M.c.content_id, M.c.sha256).where(M.c.content_id.in_(ids))).all()
    )
    out = {}
    for c in items:
        latest = newest.get(c.id)
        out[c.key] = StoredContent(
            id=c.id,
            key=c.key,
            kind=c.kind,
            state=c.state,
            version=c.version,
            latest=latest.version if latest is not None else c.version,
            title=latest.title if latest is not None else c.title,
            body=latest.body if latest is not None else c.body,
            media_sha256=latest.media_sha256 if latest is not None else playing.get(c.id),
            has_audio=c.id in playing,
        )
    return out


def _groups(conn: Connection, names: list[str]) -> dict[str, StoredGroup]:
    G, GM, E = EndpointGroup.__table__, GroupMember.__table__, Endpoint.__table__
    out = {}
    for g in conn.execute(select(G).where(G.c.name.in_(names))):
        members = conn.scalars(
            select(E.c.address).join(GM, GM.c.endpoint_id == E.c.id).where(GM.c.group_id == g.id)
        )
        out[g.name] = StoredGroup(
            channel=g.channel,
            units=tuple(g.unit_codes or ()),
            endpoints=frozenset(members),
            description=g.description,
        )
    return out


def _endpoints(conn: Connection, wanted: list[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    E = Endpoint.__table__
    by_channel: dict[str, set[str]] = {}
    for channel, address in wanted:
        by_channel.setdefault(channel, set()).add(address)
    found: set[tuple[str, str]] = set()
    for channel, addresses in by_channel.items():
        for batch in chunks(sorted(addresses), 1000):
            found.update(
                (channel, a)
                for a in conn.scalars(
                    select(E.c.address).where(E.c.channel == channel, E.c.address.in_(batch))
                )
            )
    return frozenset(found)
