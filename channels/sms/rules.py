"""The rules every non-emergency SMS keeps: quiet hours in the plan's zone, the opt-out list,
and a cap of messages per number per 24 hours. Emergency messages keep those that
`[channels.sms.emergency]` says they honour (by default: opt-outs only; a schedule's
`opt_outs` option decides for one emergency)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any

from channels.base import Outbound, Outcome
from channels.host import ChannelHost, Hold
from channels.sms.channel import UNSUBSCRIBED
from channels.sms.pauses import claim_pauses
from channels.sms.recipients import opted_out, record_opt_out
from channels.sms.settings import SmsSettings
from channels.states import EMERGENCY as EMERGENCY_NAME
from channels.states import FAILED, PRIORITIES, RETRY_WAIT
from coso.clock import as_utc, local_text, zone

EMERGENCY = PRIORITIES[EMERGENCY_NAME]
WINDOW = timedelta(hours=24)
ACTOR = "dispatcher:sms-rules"
CHANNEL = "sms"


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
    def __init__(self, host: ChannelHost, settings: SmsSettings) -> None:
        self.host, self.engine, self.settings = host, host.engine, settings
        self._zones: dict[int, str] = {}
        self._zones_read: datetime | None = None
        self._paused: set[tuple[int, datetime]] = set()  # (schedule, resume time) logged

    def _keeps(self, message: Outbound, rule: str) -> bool:
        """Does this message keep `rule` (quiet_hours, daily_cap, opt_outs)?"""
        if message.priority != EMERGENCY_NAME:
            return True
        chosen = getattr(self.settings.emergency, rule)
        if rule == "opt_outs":
            chosen = (message.extra.get("options") or {}).get("opt_outs") or chosen
        return chosen == "honour"

    def _plan_zones(self, now: datetime) -> dict[int, str]:
        if self._zones_read is None or now - self._zones_read > timedelta(minutes=1):
            self._zones = self.host.plan_zones()
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

    def hold(self, now: datetime) -> Hold | None:
        """In quiet hours only emergency SMS of those plans may be claimed; the rest wait
        (pending) and go out when the quiet hours end, unless they expire first."""
        quiet = self.quiet_plans(now)
        if not quiet:
            return None
        self._log_pauses(now, quiet)
        return Hold(frozenset(quiet), self._unless())

    def _unless(self) -> int:
        """The priority that passes quiet hours: emergency, or none when they honour them."""
        return EMERGENCY if self.settings.emergency.quiet_hours == "skip" else EMERGENCY + 1

    def _log_pauses(self, now: datetime, quiet: dict[int, datetime]) -> None:
        """One `paused` entry per schedule and night with messages waiting, however many
        processes notice it: each pause is claimed in the database first (sms_pause), and
        only the process whose claim recorded it logs it."""
        rows = self.host.waiting(CHANNEL, sorted(quiet), self._unless(), now)
        fresh = [(p, s, n) for p, s, n in rows if (s, quiet[p]) not in self._paused]
        if not fresh:
            return
        keys = [(schedule_id, quiet[plan_id]) for plan_id, schedule_id, _ in fresh]
        claimed = claim_pauses(self.engine, keys, now)
        self._paused.update(keys)
        entries = []
        for plan_id, schedule_id, count in fresh:
            until = quiet[plan_id]
            if (schedule_id, until) not in claimed:
                continue  # another process logged it
            tz = self._zones[plan_id]  # quiet plans come from _zones
            entries.append(
                {
                    "at": now,
                    "plan_id": plan_id,
                    "schedule_id": schedule_id,
                    "channel": CHANNEL,
                    "event": "paused",
                    "actor": ACTOR,
                    "detail": (
                        f"quiet hours {self.settings.quiet_start}–{self.settings.quiet_end}: "
                        f"{count} message(s) wait until {local_text(until, tz)}"
                    ),
                }
            )
        self.host.note(entries)

    # --- screening claimed messages -----------------------------------------------------

    def screen(
        self, messages: list[Outbound], now: datetime
    ) -> tuple[list[Outbound], list[Outcome]]:
        ruled = [
            m
            for m in messages
            if any(self._keeps(m, rule) for rule in ("quiet_hours", "daily_cap", "opt_outs"))
        ]
        if not ruled:
            return messages, []
        held: dict[int, Outcome] = {}
        quiet = self.quiet_plans(now)
        for m in (m for m in ruled if self._keeps(m, "quiet_hours")):
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
        asked = [m for m in ruled if self._keeps(m, "opt_outs")]
        stopped = opted_out(self.engine, [m.address for m in asked])
        for m in asked:
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
        capped = [m for m in ruled if self._keeps(m, "daily_cap")]
        if cap and capped:
            sent, oldest = self._recent(
                [m.endpoint_id for m in capped if m.delivery_id not in held], now
            )
            batch: Counter[int] = Counter()
            for m in capped:
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

    def record(self, conn: Any, messages: list[Outbound], outcomes: list[Outcome]) -> None:
        """After a send: error 21610 (the recipient unsubscribed at the gateway) is an
        opt-out for every later non-emergency message."""
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
        return self.host.reached(CHANNEL, endpoint_ids, now - WINDOW, EMERGENCY)
