"""The dispatcher service: timer, fan-out and one sender per channel, over one database.

`tick()` does one synchronous round (tests drive it with a manual clock); `start()` runs the
same work on threads for `coso serve`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from channels import registry
from channels.base import Channel
from channels.host import ChannelService, Part
from coso.clock import Clock
from coso.config import Settings
from coso.db import write
from coso.durations import parse_duration
from coso.memory import give_back_after
from coso.streak import Streak
from dispatcher import supervisor as supervising
from dispatcher.fanout import fan_out_pending
from dispatcher.host import EngineHost
from dispatcher.leader import TimerLock
from dispatcher.sender import Sender
from dispatcher.supervisor import DatabaseProbe, Supervisor
from dispatcher.transitions import expire_overdue, recover_interrupted
from dispatcher.workers import forget, heartbeat, new_worker_id, orphaned_claims, register
from schedules.firing import fire_due
from schedules.timer import Timer

log = logging.getLogger(__name__)
LOOP_LATE = 60.0  # seconds without a finished round after which a loop counts as stuck
HELD_EXPIRY_EVERY = 5.0  # seconds between expiries of a channel that cannot send now


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
        self.host = EngineHost(engine, settings, clock, leads=self._leads)
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
        self._wake = Wakes(self.senders)
        self._cues = {
            name: cue(registry.settings_of(settings, name))
            for name in self.channels
            if (cue := registry.get(name).cue_ahead) is not None
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fire_lock = threading.Lock()
        self._fan_out_wanted = threading.Event()
        self.timer: Timer | None = None
        self.timer_lock = TimerLock(engine)
        self._timer_elsewhere = False  # another process held the timer when this one looked
        self._timer_begun = False  # this process's timer started since it took the lock
        # Loop name → (its thread, when it last finished a round: time.monotonic()).
        self._loops: dict[str, tuple[threading.Thread, float]] = {}
        self._database = DatabaseProbe(engine)
        self.supervisor: Supervisor | None = None

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
            fire_due(self.engine, now, clock=self.clock)
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
        """Register this process, settle what dead ones left, and run timer and senders.
        Nothing here waits for a channel's outside service (a broker): a channel that cannot
        send yet keeps its deliveries waiting while the others go on."""
        register(self.engine, self.worker, self.clock.now())
        self.recover()
        self.timer = self._new_timer()
        # The lock first: the channels' services ask whether this process leads. The timer
        # itself starts once they run.
        if not self.timer_lock.try_acquire():
            self._timer_elsewhere = True
        for name in self.senders:
            self._start_loop(f"sender.{name}", self._send_loop, name)
        self._start_loop("heartbeat", self._heartbeat_loop)
        if self.settings.cap.folder or self.settings.cap.feeds:
            self._start_loop("cap", self._cap_loop)
        for service in self.services.values():
            service.start()
        self._take_timer()
        self._start_loop("timer-lock", self._timer_lock_loop)
        self.supervisor = Supervisor(self, supervising.SUPERVISE_EVERY).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.supervisor:
            self.supervisor.stop()
        if self.timer:
            self.timer.stop()
        self.timer_lock.release()
        for service in self.services.values():
            service.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        for sender in self.senders.values():
            sender.close()
        self._database.close()
        forget(self.engine, [self.worker])

    # --- liveness ------------------------------------------------------------------------

    def health(self) -> list[Part]:
        """Every part of this process: the database, the timer (when this process runs it),
        each sender loop, the heartbeat, each channel service's parts and the supervisor."""
        now = time.monotonic()
        parts = [self._database.check(), self._timer_part(now)]
        for name, (thread, seen) in self._loops.items():
            late = now - seen
            ok = thread.is_alive() and late < self._late_after(name)
            state = "ended" if not thread.is_alive() else ("running" if ok else "stuck")
            detail = f"{state}; last round {late:.0f}s ago" if not ok else state
            parts.append(Part(name, ok, detail, _wall(seen, now)))
        for channel, service in self.services.items():
            for part in service.health():
                parts.append(replace(part, name=f"{channel}.{part.name}"))
        if self.supervisor is not None:
            alive = self.supervisor.alive
            parts.append(
                Part(
                    "supervisor",
                    alive,
                    "running" if alive else "stopped",
                    _wall(self.supervisor.round_at, now),
                    restartable=False,
                )
            )
        return parts

    def _late_after(self, loop: str) -> float:
        """Seconds without a round after which a loop counts as stuck (the CAP reader
        waits `cap.poll_every` between rounds)."""
        if loop == "cap":
            return LOOP_LATE + 2 * parse_duration(self.settings.cap.poll_every).total_seconds()
        return LOOP_LATE

    def restart(self, part: str) -> None:
        """Start again a part `health` reported not ok (the supervisor calls this)."""
        if self._stop.is_set():
            return
        if part == "timer":
            old = self.timer
            if old is not None:
                old.stop()
            self.timer = self._new_timer()
            if self.timer_lock.held:
                self.timer.start()
        elif part.startswith("sender."):
            self._start_loop(part, self._send_loop, part.removeprefix("sender."))
        elif part == "heartbeat":
            self._start_loop(part, self._heartbeat_loop)
        elif part == "timer-lock":
            self._start_loop(part, self._timer_lock_loop)
        elif part == "cap":
            self._start_loop(part, self._cap_loop)
        else:
            channel, _, name = part.partition(".")
            if channel in self.services:
                self.services[channel].restart(name)

    def _timer_part(self, now: float) -> Part:
        timer = self.timer
        if timer is None or not self.timer_lock.held:
            every = self.settings.dispatcher.timer_retry
            detail = f"another process runs the timer; this one tries to take it over every {every}"
            return Part("timer", True, detail, restartable=False)
        every = timer.reconcile_every.total_seconds()
        late_after = max(2 * every, every + 5.0)
        seen = timer.reconciled_at
        last = _wall(seen, now) if seen is not None else None
        if not timer.running:
            return Part("timer", False, "stopped", last)
        if seen is None:
            return Part("timer", False, "not started yet", last)
        late = now - seen
        if late > late_after:
            detail = f"no reconcile pass for {late:.0f}s (expected every {every:.0f}s)"
            return Part("timer", False, detail, last)
        return Part("timer", True, f"reconciled {late:.0f}s ago", last)

    def _may_send(self, channel: str) -> bool:
        """False while a part the channel needs to send is down (its deliveries wait)."""
        service = self.services.get(channel)
        if service is None:
            return True
        return all(p.ok for p in service.health() if p.needed_to_send)

    def _new_timer(self) -> Timer:
        timer_settings = self.settings.timer
        return Timer(
            self.engine,
            self.clock,
            self._fan_out_safely,
            horizon=parse_duration(timer_settings.horizon),
            reconcile_every=parse_duration(timer_settings.reconcile_every),
            cue_ahead=lambda channel: self._cues.get(channel, timedelta(0)),
        )

    @property
    def runs_timer(self) -> bool:
        return self.timer_lock.held

    def _leads(self) -> bool:
        """Whether upkeep meant for one process belongs here (channels ask through the host):
        this process runs the timer, or it was never started (driven round by round)."""
        return self.timer is None or self.timer_lock.held

    def _start_loop(self, name: str, target: Callable[..., None], *args: object) -> None:
        """A loop on a thread of its own, in place of any earlier one of that name (which
        ends when it next looks, should it ever come back)."""
        thread = threading.Thread(target=target, args=(name, *args), name=name, daemon=True)
        old = self._loops.get(name)
        if old is not None and old[0] in self._threads:
            self._threads.remove(old[0])
        self._loops[name] = (thread, time.monotonic())
        self._threads.append(thread)
        thread.start()

    def _round(self, name: str) -> bool:
        """A loop finished a round: note it; False when the loop was replaced (it ends)."""
        current = self._loops.get(name)
        if current is None or current[0] is not threading.current_thread():
            return False
        self._loops[name] = (current[0], time.monotonic())
        return True

    def _take_timer(self) -> None:
        """Start the timer if this process holds or wins the timer lock (else another runs
        it); stop it if the lock was lost with its database connection (another may take it
        then)."""
        if self.timer is None or self._stop.is_set():
            return
        if self.timer_lock.held:
            if not self.timer_lock.still_held():
                log.error(
                    "timer stopped: the database connection holding its lock broke; "
                    "this or another process takes it again when the lock is free"
                )
                self.timer.stop()
                self.timer = self._new_timer()
                self._timer_begun = False
                self._timer_elsewhere = True
            elif not self._timer_begun:
                self._begin_timer()
            return
        if not self.timer_lock.try_acquire():
            self._timer_elsewhere = True
            return
        self._begin_timer()

    def _begin_timer(self) -> None:
        assert self.timer is not None
        if self._timer_elsewhere:
            log.warning(
                "took over the timer: the process that ran it stopped (looked every %s)",
                self.settings.dispatcher.timer_retry,
            )
        else:
            log.info("this process runs the timer")
        self._timer_begun = True
        self.timer.start()

    def _timer_lock_loop(self, me: str) -> None:
        """Every `dispatcher.timer_retry`: take the timer when its lock is free, or check
        that this process still holds it."""
        every = parse_duration(self.settings.dispatcher.timer_retry).total_seconds()
        while not self._stop.wait(every) and self._round(me):
            try:
                self._take_timer()
            except Exception:
                log.exception("taking the timer failed; retrying")

    def _heartbeat_loop(self, me: str) -> None:
        every = parse_duration(self.settings.dispatcher.heartbeat).total_seconds()
        while not self._stop.wait(every) and self._round(me):
            try:
                heartbeat(self.engine, self.worker, self.clock.now())
                if self.recover():
                    self._wake.set()
            except Exception:
                log.exception("heartbeat failed; retrying")

    def _cap_loop(self, me: str) -> None:
        """CAP documents from the folder and the feeds, read by the process that runs the
        timer (one reader, so a document is never taken twice)."""
        import httpx

        from dispatcher.cap.desk import Emergencies
        from dispatcher.cap.sources import FeedPoller, scan_folder

        cap = self.settings.cap
        desk = Emergencies(self.engine, self.settings)
        client = httpx.Client(timeout=30, follow_redirects=True)
        feeds = [FeedPoller(url, client) for url in cap.feeds]
        every = parse_duration(cap.poll_every).total_seconds()
        try:
            while not self._stop.wait(every) and self._round(me):
                if not self.runs_timer:
                    continue
                try:
                    if cap.folder:
                        folder = Path(cap.folder)
                        folder.mkdir(parents=True, exist_ok=True)
                        scan_folder(self.engine, self.settings, desk, folder, self.clock.now())
                    for feed in feeds:
                        feed.poll(self.engine, self.settings, desk, self.clock.now())
                except Exception:
                    log.exception("reading CAP alerts failed; retrying")
        finally:
            client.close()

    def _fan_out_safely(self) -> None:
        """Fan out what the timer fired. The timer's jobs do not wait for one another's
        fan-out: a call while one runs leaves the work to it, and it looks again before it
        ends."""
        self._fan_out_wanted.set()
        while self._fan_out_wanted.is_set() and self._fire_lock.acquire(blocking=False):
            try:
                self._fan_out_wanted.clear()
                now = self.clock.now()
                created = fan_out_pending(self.engine, now, self.settings.dispatcher.fanout_batch)
                if created:
                    self._wake.set()
                give_back_after(created)  # its targets and batches, read and dropped
            except Exception:
                log.exception("fan-out failed; will retry on the next reconcile")
            finally:
                self._fire_lock.release()

    def _send_loop(self, me: str, channel: str) -> None:
        idle = self.settings.dispatcher.idle_poll
        expired_at = 0.0
        streak = Streak()
        while not self._stop.is_set() and self._round(me):
            handled = 0
            try:
                if self._may_send(channel):
                    handled = self.senders[channel].send_due()
                elif time.monotonic() - expired_at >= HELD_EXPIRY_EVERY:
                    # Held back: what reaches the end of its validity meanwhile still expires.
                    expired_at = time.monotonic()
                    with write(self.engine) as conn:
                        expire_overdue(conn, self.clock.now(), channel)
            except Exception as exc:
                if streak.failed():
                    if streak.failures == 1:
                        log.exception("sender %s: round failed; retrying", channel)
                    else:
                        log.error(
                            "sender %s: %d rounds failed in a row, the last: %s; "
                            "retrying every %.1f s",
                            channel,
                            streak.failures,
                            _first_line(exc),
                            streak.wait(idle),
                        )
            else:
                if failed := streak.ended():
                    log.info("sender %s: working again after %d failed round(s)", channel, failed)
            if handled == 0:
                self._wake.wait(channel, streak.wait(idle))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _wall(monotonic: float, now: float) -> datetime:
    """The wall-clock time of a monotonic reading taken `now - monotonic` seconds ago."""
    return datetime.now(UTC) - timedelta(seconds=max(0.0, now - monotonic))


class Wakes:
    """One wake-up per sender: set for all when deliveries may have come due (a fan-out, a
    recovery, stopping), each cleared by its own sender. Shared, one sender's clear could
    swallow another's wake-up, and a wake-up meant for one channel set every idle sender
    reading the database again."""

    def __init__(self, channels: Iterable[str]) -> None:
        self._events = {name: threading.Event() for name in channels}

    def set(self) -> None:
        for event in self._events.values():
            event.set()

    def wait(self, channel: str, timeout: float) -> None:
        event = self._events[channel]
        event.wait(timeout)
        event.clear()
