"""A commune's station tasks for one local day, as the operator's "Hôm nay" page and the
morning SMS list show them: what to read out or play, when, until when, and where it
stands (upcoming, due, late, done)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from channels.base import Outbound
from channels.endpoints import Endpoint
from channels.host import ChannelHost, Slot
from channels.registry import settings_of
from channels.states import (
    CONFIRMED,
    EXPIRED,
    FAILED,
    MISSED,
    PENDING,
    RETRY_WAIT,
    SENDING,
    SENT,
    STATES,
    UNCONFIRMED,
)
from channels.station.channel import CHANNEL, open_until
from channels.station.codes import SlotKey, known_codes
from content.media import media_for
from content.models import ContentItem
from coso.clock import as_utc, zone
from coso.durations import parse_duration
from coso.units import unit_tree

UPCOMING = "upcoming"  # the slot has not fired: no delivery yet
# What a task's `status` says to the operator.
DUE, LATE, DONE = "due", "late", "done"
NOT_YET = (PENDING, SENDING, RETRY_WAIT)
# Closed without a word from the operator: a late confirmation may still be recorded.
CLOSED_UNHEARD = (UNCONFIRMED, MISSED, EXPIRED)
PRIORITY_NAMES = {0: "normal", 1: "priority", 2: "emergency"}
PRIORITY_RANKS = {name: rank for rank, name in PRIORITY_NAMES.items()}


@dataclass(frozen=True)
class Audio:
    sha256: str
    duration_seconds: float
    file_name: str


@dataclass(frozen=True)
class StationTask:
    """One item for one station at one slot."""

    delivery_id: int | None  # None: the slot has not fired yet
    endpoint_id: int
    station: str  # the endpoint's name, else its address
    unit_code: str | None
    plan_id: int
    plan_number: str
    plan_title: str
    schedule_id: int
    content_id: int
    kind: str  # text | audio | article
    title: str
    text: str  # to read out (rendered for this station's commune)
    audio: Audio | None  # to play, with its length
    priority: str  # normal | priority | emergency
    scheduled_for: datetime  # UTC
    expires_at: datetime | None  # UTC: the end of its validity
    state: str  # a delivery state, or "upcoming"
    error: str | None  # why it failed (the operator's reason)
    status: str  # upcoming | due | late | done
    can_confirm: bool  # "Đã phát" / "Không phát được" may be recorded now
    confirm_until: datetime | None  # UTC: the last moment it may be
    code: str | None  # for SMS: "XN <code>"
    zone: str  # the plan's zone, to show times in
    # Among the slot's items of its priority: the commune's running order (lower first).
    order: int = 0

    @property
    def turn(self) -> tuple[datetime, str, int, int, str]:
        """Where it comes in the day: by time, priority first, the running order, station."""
        return (self.scheduled_for, self.station, -PRIORITY_RANKS.get(self.priority, 0),
                self.order, self.title)  # fmt: skip

    @property
    def key(self) -> SlotKey:
        return (self.endpoint_id, self.schedule_id, self.scheduled_for)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local day, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=zone(tz))
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone(tz))
    return start.astimezone(UTC), end.astimezone(UTC)


def operators_zone(host: ChannelHost) -> str:
    """The zone of the operators' day: channels.station.zone, else timer.default_zone."""
    cfg = settings_of(host.settings, CHANNEL)
    return str(cfg.zone or host.settings.timer.default_zone)


def station_endpoints(host: ChannelHost, unit_code: str) -> list[Any]:
    """The stations of a unit and of every unit below it (InputError for an unknown unit)."""
    units = unit_tree(host.engine).below(unit_code)
    E = Endpoint.__table__
    with host.engine.connect() as conn:
        return list(
            conn.execute(
                select(E)
                .where(E.c.channel == CHANNEL, E.c.unit_code.in_(sorted(units)))
                .order_by(E.c.id)
            )
        )


def station_tasks(
    host: ChannelHost,
    unit_code: str,
    day: date | None = None,
    *,
    now: datetime | None = None,
    tz: str | None = None,
    coming: Sequence[Slot] | None = None,
) -> list[StationTask]:
    """The station tasks of `unit_code` (and the units below it) whose slot falls on `day`
    (today by default) in `tz` (the operators' zone by default), in slot order: fired ones
    with their delivery, and those still to come. `coming`: the channel's slots of that day
    still to fire (`slots_of_day`), when the caller lists several units."""
    now = now or host.clock.now()
    tz = tz or operators_zone(host)
    day = day or as_utc(now).astimezone(zone(tz)).date()
    start, end = day_bounds(day, tz)
    endpoints = {e.id: e for e in station_endpoints(host, unit_code)}
    if not endpoints:
        return []
    rows = host.deliveries(
        CHANNEL,
        STATES,
        endpoint_ids=sorted(endpoints),
        scheduled_from=start,
        scheduled_before=end,
    )
    fired = {(r.endpoint_id, r.schedule_id, as_utc(r.scheduled_for)) for r in rows}
    if coming is None:
        coming = slots_of_day(host, day, now=now, tz=tz)
    slots = [
        (slot, eid)
        for slot in coming
        for eid in slot.endpoint_ids
        if eid in endpoints and (eid, slot.schedule_id, as_utc(slot.at)) not in fired
    ]
    builder = _Builder(host, now, endpoints)
    tasks = builder.fired(rows) + builder.upcoming(slots)
    codes = known_codes(host.engine, [t.key for t in tasks], now)
    tasks = [_with_code(t, codes.get(t.key)) for t in tasks]
    return sorted(tasks, key=lambda t: t.turn)


def open_tasks(tasks: list[StationTask]) -> list[StationTask]:
    """Those an operator still has to do or answer: to come, due, late."""
    return [t for t in tasks if t.status in (UPCOMING, DUE, LATE)]


def _with_code(task: StationTask, code: str | None) -> StationTask:
    return replace(task, code=code) if code else task


def slots_of_day(
    host: ChannelHost, day: date, *, now: datetime | None = None, tz: str | None = None
) -> list[Slot]:
    """The station slots of a local day still to fire (every station's)."""
    now = now or host.clock.now()
    start, end = day_bounds(day, tz or operators_zone(host))
    if end <= now:
        return []
    after = start - timedelta(microseconds=1) if start > now else None
    return [
        s
        for s in host.upcoming(CHANNEL, now, end - now, after=after)
        if start <= as_utc(s.at) < end
    ]


class _Builder:
    """Reads once what the tasks of a day share: plans, contents, audio, settings."""

    def __init__(self, host: ChannelHost, now: datetime, endpoints: dict[int, Any]) -> None:
        self.host, self.now, self.endpoints = host, now, endpoints
        cfg = settings_of(host.settings, CHANNEL)
        self.late_after = parse_duration(cfg.late_after)
        self.late_window = parse_duration(cfg.late_confirmation)
        self.zones = host.plan_zones()
        self._plans: dict[int, Any] = {}

    def plan(self, plan_id: int) -> Any:
        if plan_id not in self._plans:
            self._plans[plan_id] = self.host.plan(str(plan_id))
        return self._plans[plan_id]

    def fired(self, rows: list[Any]) -> list[StationTask]:
        if not rows:
            return []
        messages = {
            (m.delivery_id if isinstance(m, Outbound) else m[0]): m
            for m in self.host.messages(rows)
        }
        contents = _contents(self.host, {r.content_id for r in rows})
        audio = media_for(self.host.engine, {r.content_id for r in rows})
        tasks = []
        for r in rows:
            content = contents.get(r.content_id)
            message = messages.get(r.id)
            order = r.schedule_id
            if isinstance(message, Outbound):
                title, text = message.title, message.body
                order = message.extra.get("order", order)
            else:  # withdrawn since, or no longer renders: say why, show what there is
                why = message[1] if message else "không đọc được nội dung"
                title = content.title if content else "?"
                text = f"(Không hiển thị được nội dung: {why})"
            tasks.append(
                self._task(
                    r.id,
                    r.endpoint_id,
                    r.plan_id,
                    r.schedule_id,
                    r.content_id,
                    content.kind if content else "",
                    title,
                    text,
                    audio.get(r.content_id),
                    PRIORITY_NAMES.get(r.priority, "normal"),
                    as_utc(r.scheduled_for),
                    as_utc(r.expires_at) if r.expires_at else None,
                    r.state,
                    r.last_error if r.state == FAILED else None,
                    order,
                )
            )
        return tasks

    def upcoming(self, slots: list[tuple[Any, int]]) -> list[StationTask]:
        if not slots:
            return []
        contents = _contents(self.host, {s.content_id for s, _ in slots})
        audio = media_for(self.host.engine, {s.content_id for s, _ in slots})
        tasks = []
        for slot, eid in slots:
            content = contents.get(slot.content_id)
            if content is None:
                continue
            plan = self.plan(slot.plan_id)
            rendered = self.host.render(
                CHANNEL, plan, content, [self.endpoints[eid]], as_utc(slot.at)
            )[0]
            text = (
                rendered
                if isinstance(rendered, str)
                else f"(Không hiển thị được nội dung: {rendered})"
            )
            tasks.append(
                self._task(
                    None,
                    eid,
                    slot.plan_id,
                    slot.schedule_id,
                    slot.content_id,
                    content.kind,
                    slot.title,
                    text,
                    audio.get(slot.content_id),
                    slot.priority,
                    as_utc(slot.at),
                    as_utc(slot.expires_at) if slot.expires_at else None,
                    UPCOMING,
                    None,
                    slot.position(self.endpoints[eid].unit_code),
                )
            )
        return tasks

    def _task(
        self,
        delivery_id: int | None,
        endpoint_id: int,
        plan_id: int,
        schedule_id: int,
        content_id: int,
        kind: str,
        title: str,
        text: str,
        asset: Any,
        priority: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
        state: str,
        error: str | None,
        order: int,
    ) -> StationTask:
        endpoint = self.endpoints[endpoint_id]
        plan = self.plan(plan_id)
        until = open_until(scheduled_for, expires_at, self.late_window)
        status, can_confirm = task_status(state, scheduled_for, until, self.now, self.late_after)
        return StationTask(
            delivery_id=delivery_id,
            endpoint_id=endpoint_id,
            station=endpoint.name or endpoint.address,
            unit_code=endpoint.unit_code,
            plan_id=plan_id,
            plan_number=plan.number,
            plan_title=plan.title,
            schedule_id=schedule_id,
            content_id=content_id,
            kind=kind,
            title=title,
            text=text,
            audio=Audio(asset.sha256, asset.duration_seconds, asset.file_name) if asset else None,
            priority=priority,
            scheduled_for=scheduled_for,
            expires_at=expires_at,
            state=state,
            error=error,
            status=status,
            can_confirm=can_confirm,
            confirm_until=until if state not in (CONFIRMED, FAILED) else None,
            code=None,
            zone=self.zones.get(plan_id, "Asia/Ho_Chi_Minh"),
            order=order,
        )


def task_status(
    state: str,
    scheduled_for: datetime,
    confirm_until: datetime,
    now: datetime,
    late_after: timedelta,
) -> tuple[str, bool]:
    """(upcoming | due | late | done, whether the operator's word may be recorded now)."""
    if state == UPCOMING or (state in NOT_YET and scheduled_for > now):
        return UPCOMING, False
    if state in (SENT, *NOT_YET):
        return (LATE if now >= scheduled_for + late_after else DUE), state == SENT
    if state in CLOSED_UNHEARD and now <= confirm_until:
        return LATE, True
    return DONE, False


def _contents(host: ChannelHost, ids: set[int]) -> dict[int, Any]:
    C = ContentItem.__table__
    with host.engine.connect() as conn:
        return {r.id: r for r in conn.execute(select(C).where(C.c.id.in_(sorted(ids))))}
