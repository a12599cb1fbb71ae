"""Several dispatcher processes on one database: live claims are left alone, dead ones are
recovered, one process runs the timer; a channel's concurrency and rate limits hold."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update

from channels.base import Accepted, Channel, Outbound
from channels.endpoints import add_endpoints
from coso.clock import ManualClock, SystemClock
from coso.config import Settings
from coso.db import write
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from dispatcher.workers import heartbeat, register
from schedules.importer import import_plan_file
from tests.helpers import SLOT, delivery_states
from tests.plans import write_plan


class Recording(Channel):
    """A channel that records when each send ran and how many ran at once."""

    name = "web"
    resend_safe = False

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.starts: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def send(self, message: Outbound) -> Accepted:
        with self.lock:
            self.starts.append(time.monotonic())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.hold)
        with self.lock:
            self.in_flight -= 1
        return Accepted(state="delivered", event="published")


def _fanned_out(engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    clock.set(SLOT)
    Dispatcher(engine, settings, clock, channels={"web": Recording()}).fire()


def _claim_all(engine: Engine, worker: str) -> None:
    with write(engine) as conn:
        conn.execute(update(Delivery.__table__).values(state="sending", claimed_by=worker))


def test_claims_of_a_live_process_are_left_alone_and_a_dead_ones_recovered(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    _fanned_out(engine, settings, clock, tmp_path)
    other = "elsewhere:4242:abcd0001"  # a process on another host, heartbeating
    register(engine, other, clock.now())
    _claim_all(engine, other)
    me = Dispatcher(engine, settings, clock, channels={"web": Recording()})
    clock.advance(timedelta(seconds=10))
    heartbeat(engine, other, clock.now())
    assert me.recover() == 0
    assert delivery_states(engine) == {"sending": 3}
    clock.advance(timedelta(seconds=16))  # silent for longer than the 15 s lease
    assert me.recover() == 3
    # SMS-like channel (no deduplication upstream): never silently re-sent.
    assert delivery_states(engine) == {"unknown": 3}


def test_claims_of_a_stopped_process_on_this_host_are_recovered_at_once(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import socket

    _fanned_out(engine, settings, clock, tmp_path)
    gone = f"{socket.gethostname()}:{2**22 + 12345}:abcd0002"  # no such pid
    register(engine, gone, clock.now())
    _claim_all(engine, gone)
    me = Dispatcher(engine, settings, clock, channels={"web": Recording()})
    assert me.recover() == 3


def test_only_one_process_runs_the_timer(engine: Engine, settings: Settings) -> None:
    clock = SystemClock()
    first = Dispatcher(engine, settings, clock, channels={"web": Recording()})
    second = Dispatcher(engine, settings, clock, channels={"web": Recording()})
    first.start()
    second.start()
    try:
        assert first.runs_timer
        assert not second.runs_timer
    finally:
        first.stop()
    try:
        second._take_timer()  # what its heartbeat does: the lock is free again
        assert second.runs_timer
    finally:
        second.stop()


def test_sends_respect_the_channel_concurrency_and_rate_limit(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    data = settings.model_dump()
    data["channels"]["web"].update(concurrency=2, rate_per_second=10)
    settings = Settings(**data)
    clock = ManualClock(SLOT - timedelta(days=1))
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:06040-{i}", "unit_code": "06040"}
            for i in range(22)
        ],
        clock.now(),
    )
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    # Each send takes longer than the pacer's spacing (0.1 s at 10/s): two are in flight.
    channel = Recording(hold=0.15)
    dispatcher = Dispatcher(engine, settings, clock, channels={"web": channel})
    clock.set(SLOT)
    dispatcher.tick()
    assert delivery_states(engine) == {"delivered": 25}
    assert channel.most_in_flight == 2
    starts = sorted(channel.starts)
    # Start times are taken just after the limiter lets a send through: allow for that
    # jitter with a slightly shorter window.
    busiest = max(sum(1 for t in starts if s <= t < s + 0.95) for s in starts)
    assert busiest <= 10
    assert starts[-1] - starts[0] >= 1.9  # 25 sends at 10/s take two seconds at least


def test_two_dispatchers_draining_at_once_send_each_delivery_once(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    clock = ManualClock(SLOT - timedelta(days=1))
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:06040-{i}", "unit_code": "06040"}
            for i in range(297)
        ],
        clock.now(),
    )
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    clock.set(SLOT)
    sent: list[int] = []

    class Counting(Recording):
        def send(self, message: Outbound) -> Accepted:
            sent.append(message.delivery_id)
            return super().send(message)

    first = Dispatcher(engine, settings, clock, channels={"web": Counting(hold=0.001)})
    second = Dispatcher(engine, settings, clock, channels={"web": Counting(hold=0.001)})
    first.fire()
    threads = [threading.Thread(target=d.drain) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert delivery_states(engine) == {"delivered": 300}
    assert len(sent) == len(set(sent)) == 300
