"""Send due deliveries of one channel: claim a batch, send with bounded concurrency under
the channel's rate limit, and record every outcome."""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from pyrate_limiter import Duration, Limiter, Rate
from sqlalchemy import Engine, or_
from sqlalchemy.exc import DBAPIError

from channels.base import (
    Accepted,
    BatchChannel,
    Channel,
    Outbound,
    Outcome,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)
from channels.host import Hold, SendRules
from channels.states import FAILED, RETRY_WAIT, UNKNOWN
from coso.clock import Clock
from coso.config import RetrySettings
from coso.db import write
from coso.durations import parse_duration
from dispatcher.inbound import release_parked, serialise
from dispatcher.messages import build_messages
from dispatcher.models import Delivery
from dispatcher.transitions import (
    apply_outcomes,
    claim,
    expire_overdue,
    has_work,
    refund_attempts,
    requeue_unsent,
)

log = logging.getLogger(__name__)
PIPELINE = 3  # batches of a batch channel published and not yet recorded
SPREAD = 0.02  # seconds of the rate a one-by-one channel may let out at once


class Sender:
    def __init__(
        self,
        engine: Engine,
        channel: Channel,
        clock: Clock,
        *,
        concurrency: int,
        rate_per_second: int,
        retry: RetrySettings,
        batch: int,
        worker: str,
        rules: SendRules | None = None,
    ) -> None:
        self.engine, self.channel, self.clock = engine, channel, clock
        self.batch, self.worker = batch, worker
        self.retry, self.rules = retry, rules
        self.rate = rate_per_second
        # buffer_ms: how long past the computed wait a blocked acquire sleeps; pyrate's 50 ms
        # default would cost a rate of 50/s about 5 %.
        self._limiter = Limiter(Rate(rate_per_second, Duration.SECOND), buffer_ms=2)
        self._pacer = Pacer(rate_per_second)
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix=f"send-{channel.name}"
        )
        self._free = threading.BoundedSemaphore(concurrency)
        # A batch channel: while this thread claims and builds the next batch, one thread
        # publishes the last, and one awaits its acks and records it; each in order.
        self._batch_channel = channel if isinstance(channel, BatchChannel) else None
        self._publisher, self._batches = (
            (
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"publish-{channel.name}"),
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"settle-{channel.name}"),
            )
            if self._batch_channel is not None
            else (None, None)
        )
        self._room = threading.BoundedSemaphore(PIPELINE)
        self._inflight: list[Future[Future[None]]] = []
        self._closing = threading.Event()
        # Deliveries this sender claimed and has not recorded yet. Any other delivery left
        # `sending` under its name was claimed by a round that then broke (the database went
        # away mid-claim or before the messages were built): never sent, so it is queued
        # again at the next round that finds the database ("orphans").
        self._claimed: set[int] = set()
        self._claimed_lock = threading.Lock()
        self._orphans_possible = True
        self._round = threading.Lock()

    def send_due(self) -> int:
        """One round: expire what is overdue, then claim, send and record one batch. A batch
        channel's batch is recorded on the settling thread, while the next one goes out.
        One round at a time: a loop started again beside one that hangs (the supervisor's)
        waits its turn, so it can never take the other's batch for an orphan."""
        if not self._round.acquire(blocking=False):
            return 0
        try:
            return self._send_round()
        finally:
            self._round.release()

    def _send_round(self) -> int:
        now = self.clock.now()
        if self._orphans_possible:
            self._requeue_orphans(now)
        with self.engine.connect() as conn:
            if not has_work(conn, self.channel.name, now):
                return 0
        only = _held_back(self.rules.hold(now)) if self.rules else None
        if self._batches is not None:
            self._room.acquire()  # at most PIPELINE batches claimed and not yet recorded
        try:
            self._orphans_possible = True  # until the claim is known and its batch ready
            with write(self.engine) as conn:
                expire_overdue(conn, now, self.channel.name)
                claimed = claim(conn, self.channel.name, now, self.batch, self.worker, only)
            if not claimed:
                self._release_room()
                self._orphans_possible = False
                return 0
            messages, outcomes, held = self._prepare_each_alone(claimed, now)
        except BaseException:
            self._release_room()
            raise
        with self._claimed_lock:  # in hand until recorded; sent or not, never an orphan
            self._claimed.update(d.id for d in claimed)
        self._orphans_possible = False
        if self._publisher is not None:
            self._inflight = [f for f in self._inflight if not _settled(f)]
            self._inflight.append(
                self._publisher.submit(self._publish_batch, messages, outcomes, held)
            )
            return len(claimed)
        self._record_until_done(messages, outcomes + self._send_all(messages), held)
        return len(claimed)

    def _prepare_each_alone(
        self, claimed: list[Any], now: datetime
    ) -> tuple[list[Outbound], list[Outcome], list[Outcome]]:
        """`_prepare`; when it breaks other than by the database (which leaves the batch to
        the next round), each delivery again alone: one that cannot be prepared fails, with
        the reason, and the others go out."""
        try:
            return self._prepare(claimed, now)
        except DBAPIError:
            raise
        except Exception:
            log.exception("preparing %d message(s) failed; each alone", len(claimed))
        messages: list[Outbound] = []
        outcomes: list[Outcome] = []
        held: list[Outcome] = []
        for d in claimed:
            try:
                m, o, h = self._prepare([d], now)
            except DBAPIError:
                raise
            except Exception as exc:
                why = f"không chuẩn bị được tin: {type(exc).__name__}: {exc}"[:500]
                outcomes.append(Outcome(d.id, FAILED, "failed", now, "dispatcher", error=why))
                continue
            messages += m
            outcomes += o
            held += h
        return messages, outcomes, held

    def _prepare(
        self, claimed: list[Any], now: datetime
    ) -> tuple[list[Outbound], list[Outcome], list[Outcome]]:
        """The claimed deliveries' messages to send, the outcomes of those that cannot be
        built, and those the channel's rules hold back."""
        outcomes: list[Outcome] = []
        messages: list[Outbound] = []
        for item in build_messages(self.engine, claimed):
            if isinstance(item, Outbound):
                messages.append(item)
            else:
                outcomes.append(
                    Outcome(item[0], FAILED, "failed", now, "dispatcher", error=item[1])
                )
        held: list[Outcome] = []
        if self.rules is not None:
            messages, held = self.rules.screen(messages, now)
        return messages, outcomes, held

    def _requeue_orphans(self, now: datetime) -> None:
        """Put back in the queue what this sender claimed in a round that broke before
        anything was sent (see `_claimed`); the claim's attempt is refunded."""
        with self._claimed_lock:
            mine = sorted(self._claimed)
        with write(self.engine) as conn:
            requeued = requeue_unsent(conn, now, self.channel.name, self.worker, mine)
        self._orphans_possible = False
        if requeued:
            log.warning(
                "%d %s deliveries claimed by a round that broke before sending: queued again",
                len(requeued),
                self.channel.name,
            )

    def flush(self) -> None:
        """Wait until every batch sent so far is recorded (tests; shutdown)."""
        for published in list(self._inflight):
            published.result().result()
        self._inflight = []

    def _publish_batch(
        self,
        messages: list[Outbound],
        outcomes: list[Outcome],
        held: list[Outcome],
    ) -> Future[None]:
        """On the publishing thread: put a batch on its way, then hand it to the settling
        thread. Should publishing itself break, every message of the batch is retried."""
        assert self._batches is not None
        try:
            pending = self._publish_all(messages)
        except Exception as exc:
            log.exception("publishing %d message(s) failed", len(messages))
            pending = [exc] * len(messages)
        return self._batches.submit(self._settle, messages, pending, outcomes, held)

    def _release_room(self) -> None:
        if self._batches is not None:
            self._room.release()

    def _settle(
        self,
        messages: list[Outbound],
        pending: list[Any],
        outcomes: list[Outcome],
        held: list[Outcome],
    ) -> None:
        """On the settling thread: await a batch's acks and record its outcomes; a database
        error is retried (the deliveries stay `sending` meanwhile), never dropped."""
        try:
            results = self._batch_channel.settle(pending)
            sent = [self._outcome(m, r) for m, r in zip(messages, results, strict=True)]
            self._record_until_done(messages, outcomes + sent, held)
        finally:
            self._room.release()

    def _record_until_done(
        self,
        messages: list[Outbound],
        outcomes: list[Outcome],
        held: list[Outcome],
    ) -> None:
        """Record the outcomes of messages that went out; a database error is retried (the
        deliveries stay `sending` meanwhile), never dropped: dropped, they would stay
        `sending` under this live process's claim, never recovered while it runs."""
        delay = 0.5
        while True:
            try:
                self._record(messages, outcomes, held)
                self._forget([o.delivery_id for o in (*outcomes, *held)])
                return
            except Exception:
                log.exception("recording %d outcome(s) failed; retrying", len(outcomes))
                if self._closing.wait(delay):
                    return  # shutting down: the restart recovers these deliveries
                delay = min(delay * 2, 10.0)

    def _forget(self, ids: list[int]) -> None:
        with self._claimed_lock:
            self._claimed.difference_update(ids)

    def _record(
        self,
        messages: list[Outbound],
        outcomes: list[Outcome],
        held: list[Outcome],
    ) -> None:
        provider_ids = (
            [o.provider_id for o in outcomes if o.provider_id]
            if self.channel.reports_by_provider_id
            else []
        )
        with write(self.engine) as conn:
            if provider_ids:  # before any row: the same order as the inbound path's
                serialise(conn)
            _, refused = apply_outcomes(conn, outcomes + held)
            refund_attempts(conn, [o.delivery_id for o in held if o.state == RETRY_WAIT])
            # Outcomes that arrived before their provider id was known apply now.
            release_parked(conn, provider_ids)
            if self.rules is not None:
                self.rules.record(conn, messages, outcomes)
        for o in refused:  # e.g. a player's `received` overtook the broker's PUBACK
            log.debug("outcome for delivery %s refused (state moved on)", o.delivery_id)

    def _send_all(self, messages: list[Outbound]) -> list[Outcome]:
        """One by one on the pool, each handed over when the rate limit lets it go (one
        thread paces: the limit is kept exactly, and the workers never queue on its lock)."""
        pending = []
        for m in messages:
            self._free.acquire()  # a worker is free: the message goes the moment it may
            self._acquire(m)
            pending.append(self._pool.submit(self._send_freeing, m))
        return [f.result() for f in pending]

    def _publish_all(self, messages: list[Outbound]) -> list[Any]:
        """Publish in steps of 50 ms of the rate, each let go by the limiter at once (one
        acquire per message cost more than publishing it)."""
        step = max(1, self.rate // 20)
        pending: list[Any] = []
        for start in range(0, len(messages), step):
            part = messages[start : start + step]
            weight = sum(self.channel.cost(m) for m in part)
            self._limiter.try_acquire(self.channel.name, weight=max(1, min(weight, self.rate)))
            pending += self._batch_channel.publish_many(part)
        return pending

    def _acquire(self, message: Outbound) -> None:
        """Wait for the rate limit: what the channel says the message costs, each unit in
        its turn of the pacer, then the whole under the limit of a second."""
        weight = max(1, min(self.channel.cost(message), self.rate))
        self._pacer.wait(weight)
        self._limiter.try_acquire(self.channel.name, weight=weight)

    def _send_freeing(self, message: Outbound) -> Outcome:
        try:
            return self._send_one(message)
        finally:
            self._free.release()

    def _send_one(self, message: Outbound) -> Outcome:
        try:
            result: Accepted | Exception = self.channel.send(message)
        except Exception as exc:
            result = exc
        return self._outcome(message, result)

    def _outcome(self, message: Outbound, result: Accepted | Exception) -> Outcome:
        actor = f"channel:{self.channel.name}"
        try:
            if isinstance(result, Exception):
                raise result
            accepted = result
        except PermanentSendError as exc:
            reason = f"{exc.code}: {exc.reason}" if exc.code else exc.reason
            return Outcome(
                message.delivery_id, FAILED, "failed", self.clock.now(), actor, error=reason
            )
        except TransientSendError as exc:
            return self._retry_or_fail(message, exc.reason, exc.retry_after)
        except UncertainSendError as exc:
            return Outcome(
                message.delivery_id, UNKNOWN, "unknown", self.clock.now(), actor, error=exc.reason
            )
        except Exception as exc:  # an unexpected error is retried, never lost
            log.exception(
                "channel %s raised on delivery %s", self.channel.name, message.delivery_id
            )
            return self._retry_or_fail(message, f"{type(exc).__name__}: {exc}", None)
        return Outcome(
            message.delivery_id,
            accepted.state,
            accepted.event,
            self.clock.now(),
            actor,
            provider_id=accepted.provider_id,
            detail=accepted.detail,
        )

    def _retry_or_fail(self, message: Outbound, reason: str, retry_after: float | None) -> Outcome:
        now = self.clock.now()
        actor = f"channel:{self.channel.name}"
        if message.attempt >= self.retry.max_attempts:
            return Outcome(
                message.delivery_id,
                FAILED,
                "failed",
                now,
                actor,
                error=f"gave up after {message.attempt} attempts: {reason}",
            )
        return Outcome(
            message.delivery_id,
            RETRY_WAIT,
            "retry",
            now,
            actor,
            error=reason,
            retry_at=now + backoff(self.retry, message.attempt, retry_after),
        )

    def close(self) -> None:
        self._closing.set()  # a batch whose recording fails now is left to the restart
        for executor in (self._publisher, self._batches):
            if executor is not None:
                executor.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        self.channel.close()


class Pacer:
    """Messages sent one by one spaced evenly over the second. The limit of a second alone
    lets a second's worth out at its start, and the time each takes to reach the other side
    then carries some of the next second's burst into the same second there. Each message
    takes the next turn, 1/rate after the one before; a turn is kept even when its thread
    wakes late, so late wake-ups cost the rate nothing. After a pause, up to SPREAD seconds'
    worth (at least one message) goes at once."""

    def __init__(self, rate_per_second: int) -> None:
        self.interval = 1.0 / rate_per_second
        self.slack = self.interval * (max(1, math.ceil(rate_per_second * SPREAD)) - 1)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, turns: int = 1) -> None:
        """Wait for `turns` turns in a row (a message of several segments)."""
        with self._lock:
            now = time.monotonic()
            at = max(self._next, now - self.slack)
            self._next = at + self.interval * turns
        if at > now:
            time.sleep(at - now)


def _held_back(hold: Hold | None) -> Any:
    """The claim condition for a channel's hold: not those plans, unless urgent enough."""
    if hold is None or not hold.plans:
        return None
    D = Delivery.__table__
    return or_(D.c.priority >= hold.unless_priority, D.c.plan_id.not_in(sorted(hold.plans)))


def _settled(published: Future[Future[None]]) -> bool:
    return published.done() and (published.exception() is not None or published.result().done())


def backoff(retry: RetrySettings, attempt: int, retry_after: float | None) -> timedelta:
    """Exponential from first_delay, capped at max_delay; a longer Retry-After wins."""
    first = parse_duration(retry.first_delay)
    delay = min(first * (2 ** (attempt - 1)), parse_duration(retry.max_delay))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay
