"""The dispatcher service: timer, fan-out and one sender per channel, over one database.

`tick()` does one synchronous round (tests drive it with a manual clock); `start()` runs the
same work on threads for `coso serve`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from channels import registry
from channels.base import Channel
from channels.host import ChannelService
from coso.clock import Clock
from coso.config import Settings
from coso.db import write
from coso.durations import parse_duration
from dispatcher.fanout import fan_out_pending
from dispatcher.host import EngineHost
from dispatcher.leader import TimerLock
from dispatcher.sender import Sender
from dispatcher.transitions import recover_interrupted
from dispatcher.workers import forget, heartbeat, new_worker_id, orphaned_claims, register
from schedules.firing import fire_due
from schedules.timer import Timer

log = logging.getLogger(__name__)


def default_channels(host: EngineHost) -> dict[str, Channel]:
    """Every installed channel that is set up to send in this process."""
    channels: dict[str, Channel] = {}
    for plugin, cfg in registry.each(host.settings, "build"):
        if not plugin.configured(cfg):
            continue
        channel = plugin.build(host, cfg)
        if channel is not None:
            channels[plugin.name] = channel
    return channels


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        channels: dict[str, Channel] | None = None,
    ) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.host = EngineHost(engine, settings, clock)
        self.worker = new_worker_id()
        self.channels = channels if channels is not None else default_channels(self.host)
        self.senders: dict[str, Sender] = {}
        self.services: dict[str, ChannelService] = {}
        for name, channel in self.channels.items():
            plugin = registry.get(name)
            cfg = registry.settings_of(settings, name)
            self.senders[name] = Sender(
                engine,
                channel,
                clock,
                concurrency=cfg.concurrency,
                rate_per_second=cfg.rate_per_second,
                retry=settings.dispatcher.retry,
                batch=settings.dispatcher.claim_batch,
                worker=self.worker,
                rules=plugin.rules(self.host, cfg) if plugin.rules else None,
            )
            if plugin.service is not None:
                self.services[name] = plugin.service(self.host, channel)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fire_lock = threading.Lock()
        self.timer: Timer | None = None
        self.timer_lock = TimerLock(engine)

    # --- one synchronous round, for tests and for the threads below ---------------------

    def recover(self) -> int:
        """Settle deliveries that dead processes left in `sending`."""
        now = self.clock.now()
        lease = parse_duration(self.settings.dispatcher.lease)
        dead = orphaned_claims(self.engine, now, lease, self.worker)
        if not dead:
            return 0
        with write(self.engine) as conn:
            settled = sum(
                recover_interrupted(conn, now, name, ch.resend_safe, dead)
                for name, ch in self.channels.items()
            )
        forget(self.engine, dead)
        log.info("recovered %d deliveries from stopped process(es) %s", settled, dead)
        return settled

    def fire(self) -> int:
        """Create due occurrences and fan them out; returns deliveries created."""
        with self._fire_lock:
            now = self.clock.now()
            fire_due(self.engine, now)
            created = fan_out_pending(self.engine, now, self.settings.dispatcher.fanout_batch)
        if created:
            self._wake.set()
        return created

    def drain(self, max_rounds: int = 100_000) -> int:
        """Send until nothing is due now; returns deliveries handled."""
        total = 0
        for _ in range(max_rounds):
            handled = sum(sender.send_due() for sender in self.senders.values())
            total += handled
            if handled == 0:
                break
        for sender in self.senders.values():
            sender.flush()
        return total

    def tick(self) -> int:
        self.fire()
        return self.drain()

    # --- threads, for `coso serve` -------------------------------------------------------

    def start(self) -> None:
        """Register this process, settle what dead ones left, and run timer and senders."""
        register(self.engine, self.worker, self.clock.now())
        self.recover()
        timer_settings = self.settings.timer
        self.timer = Timer(
            self.engine,
            self.clock,
            self._fire_safely,
            horizon=parse_duration(timer_settings.horizon),
            reconcile_every=parse_duration(timer_settings.reconcile_every),
        )
        for name, sender in self.senders.items():
            self._spawn(f"sender-{name}", self._send_loop, sender.send_due)
        self._spawn("heartbeat", self._heartbeat_loop)
        for service in self.services.values():
            service.start()
        self._take_timer()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.timer:
            self.timer.stop()
        self.timer_lock.release()
        for service in self.services.values():
            service.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        for sender in self.senders.values():
            sender.close()
        forget(self.engine, [self.worker])

    @property
    def runs_timer(self) -> bool:
        return self.timer_lock.held

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _take_timer(self) -> None:
        """Start the timer if this process wins the timer lock (else another runs it)."""
        if self.timer and not self.timer_lock.held and self.timer_lock.try_acquire():
            log.info("this process runs the timer")
            self.timer.start()

    def _heartbeat_loop(self) -> None:
        every = parse_duration(self.settings.dispatcher.heartbeat).total_seconds()
        while not self._stop.wait(every):
            try:
                heartbeat(self.engine, self.worker, self.clock.now())
                if self.recover():
                    self._wake.set()
                self._take_timer()
            except Exception:
                log.exception("heartbeat failed; retrying")

    def _fire_safely(self) -> None:
        try:
            self.fire()
        except Exception:
            log.exception("fan-out failed; will retry on the next reconcile")

    def _send_loop(self, send_due: Callable[[], int]) -> None:
        idle = self.settings.dispatcher.idle_poll
        while not self._stop.is_set():
            try:
                handled = send_due()
            except Exception:
                log.exception("sender round failed; retrying")
                handled = 0
            if handled == 0:
                self._wake.wait(idle)
                self._wake.clear()
