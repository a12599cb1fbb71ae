"""What the engine offers a channel: the one inbound path, the deliveries it may look at,
messages built for them, the slots to come and the activity log. The dispatcher implements
it (`dispatcher.host.EngineHost`); a channel package never imports the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from channels.base import Outbound, Outcome


@dataclass(frozen=True)
class Rejected:
    """An outcome refused because it is false: about a delivery coso never sent, another
    endpoint's delivery, or a slot coso does not know. Logged once, by the engine."""

    outcome: Outcome
    reason: str


@dataclass
class Received:
    """What became of a batch of outcomes."""

    applied: list[Outcome] = field(default_factory=list)  # moved a delivery
    stale: list[Outcome] = field(default_factory=list)  # a repeat, or overtaken
    parked: list[Outcome] = field(default_factory=list)  # provider id not recorded yet
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Slot:
    """One firing to come of a schedule, for the endpoints that keep their own programme."""

    schedule_id: int
    plan_id: int
    content_id: int
    title: str
    at: datetime
    expires_at: datetime | None
    priority: str  # normal | priority | emergency
    endpoint_ids: tuple[int, ...]
    media: dict[str, Any] | None  # sha256, duration: when the content has audio
    unit_codes: tuple[str | None, ...] = ()  # each endpoint's commune, as endpoint_ids
    # Unit → where this item goes among the slot's items of its priority there: a
    # commune's operator orders priority items that share a slot (schedules.running_order).
    positions: Mapping[str, int] = field(default_factory=dict)

    def position(self, unit_code: str | None) -> int:
        """Where it goes in that commune (the schedule id when no order is set)."""
        return self.positions.get(unit_code, self.schedule_id) if unit_code else self.schedule_id


@dataclass(frozen=True)
class Hold:
    """Deliveries a channel's rules keep back from claiming now: those of `plans`, unless
    their priority is at least `unless_priority`."""

    plans: frozenset[int]
    unless_priority: int


class SendRules(Protocol):
    """A channel's policy, applied by the sender (SMS: quiet hours, opt-outs, a daily cap)."""

    def hold(self, now: datetime) -> Hold | None:
        """Deliveries not to claim now, or None."""

    def screen(
        self, messages: list[Outbound], now: datetime
    ) -> tuple[list[Outbound], list[Outcome]]:
        """(messages to send, outcomes for the others: failed, or held in retry_wait)."""

    def record(self, conn: Any, messages: list[Outbound], outcomes: list[Outcome]) -> None:
        """What the send outcomes teach the rules (in the transaction that records them)."""


@dataclass(frozen=True)
class Part:
    """One part of a running service as `/healthz` shows it: working or not, why, and when
    it last showed it works (UTC; None: never yet)."""

    name: str
    ok: bool
    detail: str
    last_seen: datetime | None = None
    # The supervisor may start it again when it is not ok (a dead thread or process); False
    # for what mends itself (a broker link retrying).
    restartable: bool = True
    # While it is not ok the channel cannot send: its deliveries wait, unclaimed, instead of
    # failing (a broker that is away).
    needed_to_send: bool = False


class ChannelService(Protocol):
    """A channel's inbound events and upkeep, run while coso serves."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> list[Part]:
        """Each of its parts, named without the channel's name."""

    def restart(self, part: str) -> None:
        """Start again a part that `health` reported not ok."""


class ChannelHost(Protocol):
    """The engine's services to channels."""

    engine: Any  # sqlalchemy Engine: for the channel's own tables
    settings: Any  # coso.config.Settings
    clock: Any  # coso.clock.Clock

    def leads(self) -> bool:
        """Whether upkeep that one process does for every dispatcher belongs in this one
        (it runs the timer). With several dispatchers, only one leads at a time."""

    def receive(self, outcomes: Sequence[Outcome]) -> Received:
        """Match each outcome's reference, apply it if it moves its delivery forward, park
        those whose provider id is not recorded yet, log refused and forged ones. One
        transaction."""

    def receive_in(self, conn: Any, outcomes: Sequence[Outcome]) -> Received:
        """The same, in a transaction the caller holds."""

    def deliveries(
        self,
        channel: str,
        states: Sequence[str],
        *,
        endpoint_ids: Sequence[int]
        | Any = None,  # ids, or a SELECT of ids over the channel's table
        updated_before: datetime | None = None,
        or_endpoint_ids: Sequence[int] | None = None,
        unexpired_at: datetime | None = None,
        scheduled_from: datetime | None = None,
        scheduled_before: datetime | None = None,
        limit: int = 5000,
    ) -> list[Any]:
        """Deliveries of `channel` in `states` (rows with the delivery's columns): of
        `endpoint_ids` when given; updated before `updated_before` or of `or_endpoint_ids`;
        not expired at `unexpired_at`; with their slot in [scheduled_from, scheduled_before)."""

    def delivery(self, delivery_id: int) -> Any | None:
        """One delivery of any channel (a row with the delivery's columns), or None."""

    def provider_ids(self, channel: str) -> set[str]:
        """Every provider id recorded for the channel's deliveries."""

    def messages(self, rows: Sequence[Any]) -> list[Outbound | tuple[int, str]]:
        """The message for each delivery row, or (delivery id, why it cannot be built)."""

    def expire(
        self,
        channel: str,
        states: Sequence[str],
        now: datetime,
        detail: str,
        *,
        to: str = "expired",
        actor: str = "dispatcher",
    ) -> int:
        """Deliveries of `channel` in `states` past their expiry become `to` (`expired`; a
        channel that waits for a person: `unconfirmed`), logged as by `actor`."""

    def upcoming(
        self, channel: str, now: datetime, horizon: timedelta, after: datetime | None = None
    ) -> list[Slot]:
        """The slots of enabled schedules on `channel` in (now, now + horizon] (from `after`
        instead of each schedule's last firing, when given)."""

    def plan_zones(self) -> dict[int, str]:
        """Plan id → its time zone."""

    def waiting(
        self, channel: str, plans: Sequence[int], below_priority: int, now: datetime
    ) -> list[tuple[int, int, int]]:
        """(plan, schedule, deliveries) due now and waiting, below `below_priority`."""

    def reached(
        self, channel: str, endpoint_ids: Sequence[int], since: datetime, below_priority: int
    ) -> tuple[dict[int, int], dict[int, datetime]]:
        """Per endpoint: `sent` entries since `since` below `below_priority`, and the oldest."""

    def plan(self, ref: str) -> Any:
        """A plan by number ("95/KH-UBND") or id; InputError naming it when there is none."""

    def content(self, plan: Any, key: str) -> Any:
        """A content item of `plan` by key; InputError naming it when there is none."""

    def render(
        self, channel: str, plan: Any, content: Any, endpoints: Sequence[Any], when: datetime
    ) -> list[str | Exception]:
        """`content` rendered for each endpoint row (with its unit), as the send would render
        it at `when`; an InputError in place of each text that does not render."""

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
        """A schedule of `plan` that fires once, now (an ad-hoc blast), recorded in the plan."""

    def schedule_counts(self, schedule_id: int) -> dict[str, int]:
        """Deliveries of one schedule by state."""

    def dispatcher(self, channels: dict[str, Any]) -> Any:
        """A dispatcher over just `channels` (start(), fire(), stop())."""

    def note(
        self,
        entries: Sequence[dict[str, Any]],
    ) -> None:
        """Append log entries that move no delivery (at, plan_id, schedule_id, channel,
        event, actor, detail)."""

    def note_delivery(
        self, delivery_id: int, at: datetime, event: str, actor: str, detail: str | None
    ) -> bool:
        """Append a log entry about one delivery of any channel (its plan, unit and endpoint
        copied from it) that leaves its state as it is: a person's note. False when there
        is no such delivery."""
