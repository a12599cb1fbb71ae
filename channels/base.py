"""The channel interface: one module per channel implements `Channel`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class Outbound:
    """One delivery, rendered, ready for a channel to send to one endpoint."""

    delivery_id: int
    endpoint_id: int
    address: str
    unit_code: str | None
    attempt: int
    priority: str
    expires_at: datetime | None
    title: str
    body: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """The channel took the message. `state` is how far it got: sent, delivered, played."""

    state: str
    event: str
    provider_id: str | None = None
    detail: str | None = None


class TransientSendError(Exception):
    """Worth retrying later (timeouts, 429, 5xx); `retry_after` in seconds when told."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class UncertainSendError(Exception):
    """The request may or may not have reached the far side (the answer was lost). For a
    channel that is not resend-safe the delivery becomes `unknown` until reconciled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentSendError(Exception):
    """Will never succeed for this endpoint (bad address, refused); kept with the provider code."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: a send's result, a player's event, a gateway's status
    callback, an operator's confirmation. It names its delivery one of three ways, matched
    by the engine (`dispatcher.inbound.receive`):

    - `delivery_id`, what coso sent with the message (with `endpoint_id`: and only when the
      delivery is that endpoint's, so one device cannot report on another's);
    - `provider_id` alone (delivery_id None): the id the far side gave the message; an
      outcome that arrives before the send recorded that id is kept until it does;
    - `endpoint_id`, `schedule_id` and `scheduled_for`: a slot of a programme the endpoint
      keeps itself.
    """

    delivery_id: int | None
    state: str
    event: str
    at: datetime
    actor: str
    provider_id: str | None = None
    error: str | None = None
    detail: str | None = None
    endpoint_id: int | None = None  # when set, the event must come from this endpoint
    retry_at: datetime | None = None  # with state retry_wait: when to try again
    late_after: timedelta | None = None  # its log entry says "late by" past this (None: 1 min)
    schedule_id: int | None = None  # with endpoint_id and scheduled_for: a slot reference
    scheduled_for: datetime | None = None
    # From the far side (an inbound source), not from coso's own sender: a refusal is
    # logged when it is not merely a repeat.
    inbound: bool = False


@dataclass(frozen=True)
class DeviceState:
    """What a device last told of itself, for the console's device list."""

    online: bool
    last_seen: datetime | None = None
    playing: str | None = None
    last_failure: str | None = None
    last_failure_at: datetime | None = None


class Channel(ABC):
    """Sends one channel's messages. Everything else a channel brings (settings, tables,
    inbound events, upkeep, routes, commands, plan-file options) is declared by its plugin
    (`channels.registry.ChannelPlugin`)."""

    name: ClassVar[str]
    # True when sending a delivery again after a crash cannot reach people twice
    # (the far side deduplicates on the delivery id). SMS is not.
    resend_safe: ClassVar[bool]
    # True when the far side reports outcomes by the provider id it answered with (status
    # callbacks): such outcomes may arrive before the send is recorded, and are kept.
    reports_by_provider_id: ClassVar[bool] = False

    @abstractmethod
    def send(self, message: Outbound) -> Accepted:
        """Send one message; raise TransientSendError or PermanentSendError on failure."""

    def cost(self, message: Outbound) -> int:
        """What a message takes from the channel's rate limit (SMS: its segments)."""
        return 1

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


@runtime_checkable
class BatchChannel(Protocol):
    """A channel that sends a whole batch at once: publish all, then await all acks. The
    sender publishes the next batch while the last one's acks are awaited and recorded."""

    def publish_many(self, messages: Sequence[Outbound]) -> list[Any]:
        """Put every message on its way; what `settle` needs to learn how each went."""
        ...

    def settle(self, pending: Sequence[Any]) -> list[Accepted | Exception]:
        """How each published message went, in order (waits for the acks)."""
        ...
