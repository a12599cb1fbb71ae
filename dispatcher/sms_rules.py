"""The rules every non-emergency SMS keeps: quiet hours in the plan's zone, the opt-out list,
and a cap of messages per number per 24 hours. Emergency messages ignore quiet hours, the
cap and opt-outs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from channels.base import Outbound, Outcome
from channels.recipients import opted_out, record_opt_out
from channels.sms import UNSUBSCRIBED
from coso.clock import as_utc, local_text, zone
from coso.config import SmsSettings
from coso.db import chunks, write
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.states import FAILED, RETRY_WAIT, WAITING
from dispatcher.transitions import append_log
from schedules.models import PRIORITIES, Plan

D = Delivery.__table__
A = ActivityEntry.__table__
EMERGENCY = PRIORITIES["emergency"]
WINDOW = timedelta(hours=24)
ACTOR = "dispatcher:sms-rules"


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, tz: str, start: str, end: str) -> datetime | None:
    """When the quiet hours that hold at `now` (in zone `tz`) end; None when it is not quiet."""
    quiet_start, quiet_end = _clock(start), _clock(end)
    if quiet_start == quiet_end:
        return None
    local = as_utc(now).astimezone(zone(tz))
    t = local.time()
    if quiet_start < quiet_end:
        quiet = quiet_start <= t < quiet_end
    else:  # across midnight: 22:00-07:00
        quiet = t >= quiet_start or t < quiet_end
    if not quiet:
        return None
    end_local = local.replace(hour=quiet_end.hour, minute=quiet_end.minute, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    return as_utc(end_local)


class SmsRules:
    def __init__(self, engine: Engine, settings: SmsSettings) -> None:
        self.engine, self.settings = engine, settings
        self._zones: dict[int, str] = {}
        self._zones_read: datetime | None = None
        self._paused: set[tuple[int, datetime]] = set()  # (schedule, resume time) logged

    def _plan_zones(self, now: datetime) -> dict[int, str]:
        if self._zones_read is None or now - self._zones_read > timedelta(minutes=1):
            P = Plan.__table__
            with self.engine.connect() as conn:
                self._zones = dict(conn.execute(select(P.c.id, P.c.zone)).all())
            self._zones_read = now
        return self._zones

    def quiet_plans(self, now: datetime) -> dict[int, datetime]:
        """Plans in quiet hours now → when their quiet hours end."""
        s = self.settings
        out: dict[int, datetime] = {}
        for plan_id, tz in self._plan_zones(now).items():
            until = quiet_until(now, tz, s.quiet_start, s.quiet_end)
            if until is not None:
                out[plan_id] = until
        return out

    # --- claiming -----------------------------------------------------------------------

    def claim_filter(self, now: datetime) -> Any:
        """In quiet hours only emergency SMS of those plans may be claimed; the rest wait
        (pending) and go out when the quiet hours end, unless they expire first."""
        quiet = self.quiet_plans(now)
        if not quiet:
            return None
        self._log_pauses(now, quiet)
        return or_(D.c.priority >= EMERGENCY, D.c.plan_id.not_in(list(quiet)))

    def _log_pauses(self, now: datetime, quiet: dict[int, datetime]) -> None:
        """One `paused` entry per schedule and night with messages waiting."""
        waiting = and_(
            D.c.channel == "sms",
            D.c.state.in_(WAITING),
            D.c.priority < EMERGENCY,
            D.c.plan_id.in_(list(quiet)),
            D.c.next_attempt_at <= now,
            or_(D.c.expires_at.is_(None), D.c.expires_at > now),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(D.c.plan_id, D.c.schedule_id, func.count())
                .where(waiting)
                .group_by(D.c.plan_id, D.c.schedule_id)
            ).all()
        entries = []
        for plan_id, schedule_id, count in rows:
            until = quiet[plan_id]
            if (schedule_id, until) in self._paused:
                continue
            self._paused.add((schedule_id, until))
            tz = self._zones[plan_id]  # quiet plans come from _zones
            entries.append(
                {
                    "at": now,
                    "plan_id": plan_id,
                    "schedule_id": schedule_id,
                    "channel": "sms",
                    "event": "paused",
                    "actor": ACTOR,
                    "detail": (
                        f"quiet hours {self.settings.quiet_start}–{self.settings.quiet_end}: "
                        f"{count} message(s) wait until {local_text(until, tz)}"
                    ),
                }
            )
        if entries:
            with write(self.engine) as conn:
                append_log(conn, entries)

    # --- screening claimed messages -----------------------------------------------------

    def screen(
        self, messages: list[Outbound], now: datetime
    ) -> tuple[list[Outbound], list[Outcome]]:
        normal = [m for m in messages if m.priority != "emergency"]
        if not normal:
            return messages, []
        held: dict[int, Outcome] = {}
        quiet = self.quiet_plans(now)
        for m in normal:
            plan_id = m.extra["plan_id"]
            until = quiet.get(plan_id)
            if until is not None:
                tz = self._zones[plan_id]  # quiet plans come from _zones
                held[m.delivery_id] = Outcome(
                    m.delivery_id,
                    RETRY_WAIT,
                    "paused",
                    now,
                    ACTOR,
                    detail=f"quiet hours: waits until {local_text(until, tz)}",
                    retry_at=until,
                )
        stopped = opted_out(self.engine, [m.address for m in normal])
        for m in normal:
            if m.delivery_id not in held and m.address in stopped:
                held[m.delivery_id] = Outcome(
                    m.delivery_id,
                    FAILED,
                    "opted_out",
                    now,
                    ACTOR,
                    error="the number opted out of SMS; not sent",
                )
        cap = self.settings.daily_cap
        if cap:
            sent, oldest = self._recent(
                [m.endpoint_id for m in normal if m.delivery_id not in held], now
            )
            batch: Counter[int] = Counter()
            for m in normal:
                if m.delivery_id in held:
                    continue
                if sent.get(m.endpoint_id, 0) + batch[m.endpoint_id] >= cap:
                    free_at = oldest.get(m.endpoint_id, now) + WINDOW
                    held[m.delivery_id] = Outcome(
                        m.delivery_id,
                        RETRY_WAIT,
                        "held",
                        now,
                        ACTOR,
                        detail=f"{cap} messages to this number in 24 hours (the cap)",
                        retry_at=max(free_at, now + timedelta(minutes=1)),
                    )
                else:
                    batch[m.endpoint_id] += 1
        return [m for m in messages if m.delivery_id not in held], list(held.values())

    def begin_record(self, conn: Any) -> None:
        """Recording sids and applying callbacks take turns, the lock taken before any row
        (the same order as the callbacks' transactions: no deadlock)."""
        from dispatcher.sms_status import serialise

        serialise(conn)

    def record(self, conn: Any, messages: list[Outbound], outcomes: list[Outcome]) -> None:
        """After a send: callbacks that overtook their message apply now; error 21610 (the
        recipient unsubscribed at the gateway) is an opt-out for every later non-emergency
        message."""
        from dispatcher.sms_status import apply_early

        apply_early(conn, [o.provider_id for o in outcomes if o.provider_id])
        phones = {m.delivery_id: m.address for m in messages}
        for o in outcomes:
            if o.state == FAILED and (o.error or "").startswith(f"{UNSUBSCRIBED}:"):
                phone = phones.get(o.delivery_id)
                if phone:
                    record_opt_out(
                        conn, phone, o.at, "gateway", f"error {UNSUBSCRIBED} when sending"
                    )

    def _recent(
        self, endpoint_ids: list[int], now: datetime
    ) -> tuple[dict[int, int], dict[int, datetime]]:
        """Non-emergency SMS sent to each endpoint in the last 24 hours, and the oldest."""
        counts: dict[int, int] = {}
        oldest: dict[int, datetime] = {}
        since = now - WINDOW
        with self.engine.connect() as conn:
            for batch in chunks(sorted(set(endpoint_ids)), 5000):
                rows = conn.execute(
                    select(A.c.endpoint_id, func.count(), func.min(A.c.at))
                    .select_from(A.join(D, D.c.id == A.c.delivery_id))
                    .where(
                        A.c.endpoint_id.in_(batch),
                        A.c.channel == "sms",
                        A.c.event == "sent",
                        A.c.at > since,
                        D.c.priority < EMERGENCY,
                    )
                    .group_by(A.c.endpoint_id)
                )
                for eid, count, first in rows:
                    counts[eid] = count
                    oldest[eid] = as_utc(first)
        return counts, oldest
