"""The engine's services to channel plugins (`channels.host.ChannelHost`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, func, or_, select

from channels.base import Outbound, Outcome
from channels.endpoints import resolve_targets
from channels.host import Received, Slot
from channels.states import EXPIRED, WAITING
from content.media import media_for
from content.models import APPROVED, ContentItem
from content.render import message_context, render
from coso.clock import Clock, as_utc
from coso.config import Settings
from coso.db import chunks, write
from coso.errors import InputError
from coso.units import unit_names
from dispatcher.inbound import receive_in
from dispatcher.messages import build_messages
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.queries import find_plan
from dispatcher.rotation_picks import pool_ids, turns
from dispatcher.transitions import append_log, log_deliveries, move_where
from schedules.adhoc import add_blast, find_content
from schedules.firing import MOST_AHEAD
from schedules.models import PRIORITY, Plan, Schedule
from schedules.running_order import positions_of, slot_key
from schedules.session_store import only_placed, placed_units
from schedules.timing import timing_of

D = Delivery.__table__
A = ActivityEntry.__table__
S = Schedule.__table__
C = ContentItem.__table__


class EngineHost:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        leads: Callable[[], bool] | None = None,
    ) -> None:
        """`leads`: whether this process runs the timer (default: it is the only one)."""
        self.engine, self.settings, self.clock = engine, settings, clock
        self._leads = leads

    def leads(self) -> bool:
        return self._leads() if self._leads is not None else True

    def receive(self, outcomes: Sequence[Outcome]) -> Received:
        with write(self.engine) as conn:
            return receive_in(conn, outcomes)

    def receive_in(self, conn: Any, outcomes: Sequence[Outcome]) -> Received:
        return receive_in(conn, outcomes)

    def deliveries(
        self,
        channel: str,
        states: Sequence[str],
        *,
        endpoint_ids: Sequence[int] | Select[Any] | None = None,
        updated_before: datetime | None = None,
        or_endpoint_ids: Sequence[int] | None = None,
        unexpired_at: datetime | None = None,
        scheduled_from: datetime | None = None,
        scheduled_before: datetime | None = None,
        limit: int = 5000,
    ) -> list[Any]:
        condition = and_(D.c.channel == channel, D.c.state.in_(list(states)))
        if scheduled_from is not None:
            condition = and_(condition, D.c.scheduled_for >= scheduled_from)
        if scheduled_before is not None:
            condition = and_(condition, D.c.scheduled_for < scheduled_before)
        if isinstance(endpoint_ids, Select):  # a query over the channel's own table
            condition = and_(condition, D.c.endpoint_id.in_(endpoint_ids.scalar_subquery()))
        elif endpoint_ids is not None:
            condition = and_(condition, D.c.endpoint_id.in_(list(endpoint_ids)))
        if unexpired_at is not None:
            condition = and_(
                condition, or_(D.c.expires_at.is_(None), D.c.expires_at > unexpired_at)
            )
        if updated_before is not None:
            old = D.c.updated_at <= updated_before
            if or_endpoint_ids:
                old = or_(old, D.c.endpoint_id.in_(list(or_endpoint_ids)))
            condition = and_(condition, old)
        with self.engine.connect() as conn:
            return list(conn.execute(select(D).where(condition).order_by(D.c.id).limit(limit)))

    def provider_ids(self, channel: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(D.c.provider_id).where(
                        D.c.provider_id.is_not(None), D.c.channel == channel
                    )
                )
            )

    def messages(self, rows: Sequence[Any]) -> list[Outbound | tuple[int, str]]:
        return build_messages(self.engine, rows)

    def delivery(self, delivery_id: int) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(select(D).where(D.c.id == delivery_id)).first()

    def expire(
        self,
        channel: str,
        states: Sequence[str],
        now: datetime,
        detail: str,
        *,
        to: str = EXPIRED,
        actor: str = "dispatcher",
    ) -> int:
        with write(self.engine) as conn:
            return move_where(
                conn,
                and_(D.c.channel == channel, D.c.state.in_(list(states)), D.c.expires_at <= now),
                to,
                at=now,
                event=to,
                actor=actor,
                detail=detail,
            )

    def upcoming(
        self, channel: str, now: datetime, horizon: timedelta, after: datetime | None = None
    ) -> list[Slot]:
        with self.engine.connect() as conn:
            schedules = conn.execute(
                select(S).where(S.c.enabled.is_(True), S.c.channel == channel)
            ).all()
        pools = {s.id: pool_ids(self.engine, s)[0] for s in schedules if s.rotation}
        wanted = {s.content_id for s in schedules} | {c for p in pools.values() for c in p}
        with self.engine.connect() as conn:
            approved = dict(
                conn.execute(
                    select(C.c.id, C.c.title).where(C.c.id.in_(wanted), C.c.state == APPROVED)
                ).all()
            )
        audio = media_for(self.engine, set(approved))
        slots: list[Slot] = []
        for sch in schedules:
            if not pools.get(sch.id) and sch.content_id not in approved:
                continue
            # From now: a slot fired ahead of its time (its channel's cue) is still to come,
            # and stays in the programme its devices keep.
            start = now if after is None else after
            # A programme holds what the timer holds: a schedule stored before its
            # channel's bounds were checked cannot fill a player's programme.
            times = timing_of(sch).fire_times(start, now + horizon, most=MOST_AHEAD)
            if not times:
                continue
            targets = resolve_targets(self.engine, channel, sch.targets)
            placed = placed_units(self.engine, sch.id) if sch.queue is not None else None
            ahead = turns(self.engine, sch, targets, len(times))
            # A schedule's slots to the same endpoints share one tuple of them (a schedule
            # every hour to 50,000 players: one tuple, not 48); the group is kept with its
            # tuples, so that its id stays its own.
            shared: dict[int, tuple[Any, tuple[int, ...], tuple[str | None, ...], list[str]]] = {}
            for when, groups in zip(times, ahead, strict=True):
                if placed is not None:  # queued into sessions: the units placed in this one
                    here = placed.get(when, set())
                    groups = [(c, only_placed(g, here)) for c, g in groups]
                for content_id, group in groups:
                    if not group:
                        continue
                    asset = audio.get(content_id)
                    if id(group) not in shared:
                        units = tuple(unit for _eid, unit in group)
                        shared[id(group)] = (
                            group,
                            tuple(eid for eid, _unit in group),
                            units,
                            sorted({u for u in units if u}),
                        )
                    _, endpoint_ids, units, communes = shared[id(group)]
                    slots.append(
                        Slot(
                            schedule_id=sch.id,
                            plan_id=sch.plan_id,
                            content_id=content_id,
                            title=approved.get(content_id, ""),
                            at=when,
                            expires_at=when + timedelta(seconds=sch.validity_seconds)
                            if sch.validity_seconds
                            else None,
                            priority=sch.priority,
                            endpoint_ids=endpoint_ids,
                            media={"sha256": asset.sha256, "duration": asset.duration_seconds}
                            if asset
                            else None,
                            unit_codes=units,
                            positions={u: sch.id for u in communes}
                            if sch.priority == PRIORITY
                            else {},
                        )
                    )
        return _placed(self.engine, slots)

    def plan_zones(self) -> dict[int, str]:
        P = Plan.__table__
        with self.engine.connect() as conn:
            return dict(conn.execute(select(P.c.id, P.c.zone)).all())

    def waiting(
        self, channel: str, plans: Sequence[int], below_priority: int, now: datetime
    ) -> list[tuple[int, int, int]]:
        condition = and_(
            D.c.channel == channel,
            D.c.state.in_(WAITING),
            D.c.priority < below_priority,
            D.c.plan_id.in_(list(plans)),
            D.c.next_attempt_at <= now,
            or_(D.c.expires_at.is_(None), D.c.expires_at > now),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(D.c.plan_id, D.c.schedule_id, func.count())
                .where(condition)
                .group_by(D.c.plan_id, D.c.schedule_id)
            ).all()
        return [(p, s, n) for p, s, n in rows]

    def reached(
        self, channel: str, endpoint_ids: Sequence[int], since: datetime, below_priority: int
    ) -> tuple[dict[int, int], dict[int, datetime]]:
        counts: dict[int, int] = {}
        oldest: dict[int, datetime] = {}
        with self.engine.connect() as conn:
            for batch in chunks(sorted(set(endpoint_ids)), 5000):
                rows = conn.execute(
                    select(A.c.endpoint_id, func.count(), func.min(A.c.at))
                    .select_from(A.join(D, D.c.id == A.c.delivery_id))
                    .where(
                        A.c.endpoint_id.in_(batch),
                        A.c.channel == channel,
                        A.c.event == "sent",
                        A.c.at > since,
                        D.c.priority < below_priority,
                    )
                    .group_by(A.c.endpoint_id)
                )
                for eid, count, first in rows:
                    counts[eid] = count
                    oldest[eid] = as_utc(first)
        return counts, oldest

    def plan(self, ref: str) -> Any:
        return find_plan(self.engine, ref)

    def content(self, plan: Any, key: str) -> Any:
        return find_content(self.engine, plan, key)

    def render(
        self, channel: str, plan: Any, content: Any, endpoints: Sequence[Any], when: datetime
    ) -> list[str | Exception]:
        names = unit_names(self.engine, {e.unit_code for e in endpoints if e.unit_code})
        texts: list[str | Exception] = []
        for e in endpoints:
            context = message_context(
                plan, content, e, e.unit_code, names.get(e.unit_code or "", ""), when
            )
            try:
                texts.append(render(channel, content.title, content.body, context).body)
            except InputError as exc:
                texts.append(exc)
        return texts

    def add_blast(
        self,
        plan: Any,
        content_key: str,
        channel: str,
        targets: dict[str, list[str]],
        now: datetime,
        *,
        priority: str = "normal",
        validity: timedelta | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        return add_blast(
            self.engine,
            plan,
            content_key,
            channel,
            targets,
            now,
            priority=priority,
            validity=validity,
            options=options,
        )

    def schedule_counts(self, schedule_id: int) -> dict[str, int]:
        """Deliveries of one schedule by state (an ad-hoc blast's progress)."""
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(D.c.state, func.count())
                    .where(D.c.schedule_id == schedule_id)
                    .group_by(D.c.state)
                ).all()
            )

    def dispatcher(self, channels: dict[str, Any]) -> Any:
        """A dispatcher over just `channels` (a command that sends, such as a blast)."""
        from dispatcher.service import Dispatcher

        return Dispatcher(self.engine, self.settings, self.clock, channels=channels)

    def note(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            with write(self.engine) as conn:
                append_log(conn, list(entries))

    def note_delivery(
        self, delivery_id: int, at: datetime, event: str, actor: str, detail: str | None
    ) -> bool:
        with write(self.engine) as conn:
            if conn.scalar(select(D.c.id).where(D.c.id == delivery_id)) is None:
                return False
            log_deliveries(conn, [(delivery_id, at, event, None, actor, detail)])
        return True


def _placed(engine: Engine, slots: list[Slot]) -> list[Slot]:
    """Each priority slot with its place in every commune where an operator ordered it."""
    ordered = [s for s in slots if s.positions]
    if not ordered:
        return slots
    found = positions_of(engine, [(u, s.at, s.schedule_id) for s in ordered for u in s.positions])
    return [
        replace(
            s,
            positions={u: found[(u, slot_key(s.at), s.schedule_id)] for u in s.positions},
        )
        if s.positions
        else s
        for s in slots
    ]
