"""Faults under a running `coso serve` (a real process on a PostgreSQL cluster of its own),
counted at the far end: SIGKILL mid fan-out, the broker killed and restarted, PostgreSQL
stopped mid SMS blast, a gateway answering 429/503. Nothing lost, nothing doubled.

The same scenarios at full scale: `python -m bench.faults` (docs/reliability.md)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

import dispatcher.sender
from channels.base import Accepted, Channel, Outbound
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.fault_scenarios import (
    SpeakerRig,
    Trial,
    broker_trials,
    database_outage,
    gateway_outage,
    kill_trials,
    spacing,
    speaker_rig,
)
from tests.fault_services import MissingTool, OwnPostgres, need
from tests.helpers import SLOT, delivery_states
from tests.plans import write_plan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg() -> Iterator[OwnPostgres]:
    try:
        cluster = OwnPostgres()
    except MissingTool as exc:
        pytest.fail(str(exc))
    with cluster:
        yield cluster


@pytest.fixture(scope="module")
def speakers(pg: OwnPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeakerRig]:
    try:
        need("mosquitto", "mosquitto (apt-get install mosquitto)")
    except MissingTool as exc:
        pytest.fail(str(exc))
    with speaker_rig(pg, tmp_path_factory.mktemp("speakers"), 1000, ack_timeout="5s") as ready:
        yield ready


def _nothing_lost_or_doubled(trials: list[Trial]) -> None:
    for trial in trials:
        assert (trial.lost, trial.duplicated, trial.explained) == (0, 0, 0), (
            f"{trial.scenario} #{trial.number} ({trial.fault}): {trial.notes}"
        )


def test_sigkill_of_coso_serve_mid_fan_out_loses_and_doubles_no_play(
    speakers: SpeakerRig,
) -> None:
    seed = random.randrange(1_000_000)
    print(f"seed {seed}")
    trials = kill_trials(speakers, 3, seed)
    assert len(trials) == 3
    _nothing_lost_or_doubled(trials)


def test_broker_killed_and_restarted_mid_fan_out_loses_and_doubles_no_play(
    speakers: SpeakerRig,
) -> None:
    seed = random.randrange(1_000_000)
    print(f"seed {seed}")
    _nothing_lost_or_doubled(broker_trials(speakers, 1, seed, down=3))


def test_postgresql_stopped_mid_sms_blast_loses_and_doubles_no_message(
    pg: OwnPostgres, tmp_path: Path
) -> None:
    trial = database_outage(pg, tmp_path, recipients=300, rate=30, down=10, after=60)
    _nothing_lost_or_doubled([trial])
    assert "end states {'sent': 300}" in trial.fault
    # An operator reads that log: each sender says it failed, then once in a while how many
    # times (they wait longer each time), not a traceback every few milliseconds.
    lines = (tmp_path / "serve-database.log").read_text().splitlines()
    failed = [line for line in lines if line.startswith("20") and "failed" in line]
    assert len([line for line in failed if "dispatcher.service: sender" in line]) <= 40, failed
    assert any("working again" in line for line in lines)


def test_gateway_429_and_503_are_retried_with_growing_spacing_and_400_is_not(
    pg: OwnPostgres, tmp_path: Path
) -> None:
    trial = gateway_outage(
        pg, tmp_path, recipients=40, outage=10, retry_after=2,
        retry={"first_delay": "1s", "max_delay": "8s", "max_attempts": 10},
    )  # fmt: skip
    _nothing_lost_or_doubled([trial])
    # Each of the three invalid numbers: one request refused 400 (after the outage), no more.
    assert list(trial.permanent_attempts.values()) == [1, 1, 1], trial.permanent_attempts
    assert "'failed': 3" in trial.fault
    for gaps in trial.gaps_429:  # Retry-After (2 s) is the floor: 2, 2, 4, 8
        assert len(gaps) >= 3 and min(gaps) >= 1.95, gaps
        assert all(b >= a - 0.3 for a, b in itertools.pairwise(gaps)), gaps
    for gaps in trial.gaps_5xx:  # no Retry-After: 1, 2, 4, 8 (then max_delay)
        # Each wait is counted from the refusal, so a busy machine can only make one longer:
        # each is at least its doubling, whatever came before it.
        doubling = [min(1.0 * 2**i, 8.0) for i in range(len(gaps))]
        assert len(gaps) >= 3, gaps
        assert all(g >= d - 0.05 for g, d in zip(gaps, doubling, strict=True)), gaps
    assert spacing(trial.gaps_5xx)[-1] > spacing(trial.gaps_5xx)[0]


class Recording(Channel):
    """A channel sending one message at a time (not a batch channel), as SMS does."""

    name = "web"
    resend_safe = False

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(self, message: Outbound) -> Accepted:
        self.sent.append(message.delivery_id)
        return Accepted(state="delivered", event="published")


def test_outcomes_of_messages_sent_while_the_database_failed_are_recorded_when_it_answers(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They went out: dropping their outcomes left them `sending` under a live process's
    claim for as long as it ran (a PostgreSQL restart mid SMS blast stalled it)."""
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    real = dispatcher.sender.apply_outcomes
    failures = [OperationalError("UPDATE delivery", {}, Exception("server closed the connection"))]

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatcher.sender, "apply_outcomes", flaky)
    channel = Recording()
    clock.set(SLOT)
    Dispatcher(engine, settings, clock, channels={"web": channel}).tick()
    assert delivery_states(engine) == {"delivered": 3}
    assert len(channel.sent) == len(set(channel.sent)) == 3


class Screening:
    """A channel's rules whose look at the database (SMS opt-outs) breaks once."""

    def __init__(self, cut: Exception) -> None:
        self.cut: Exception | None = cut

    def hold(self, now: datetime) -> None:
        return None

    def screen(self, messages: list[Outbound], now: datetime) -> tuple[list[Outbound], list]:
        if self.cut is not None:
            cut, self.cut = self.cut, None
            raise cut
        return messages, []

    def record(self, conn: object, messages: list[Outbound], outcomes: list) -> None:
        pass


@pytest.mark.parametrize(
    "breaks", ["claim's commit", "building the messages", "the channel's rules"]
)
def test_a_round_that_breaks_after_claiming_sends_its_deliveries_once_at_the_next(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    breaks: str,
) -> None:
    """The claim was committed, then the database went away: while the commit's answer came
    back (the claim looked failed), or before the messages were built. Those deliveries were
    never sent; they stayed `sending` for as long as coso ran (20 of a blast stalled)."""
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    cut = OperationalError("COMMIT", {}, Exception("server closed the connection"))
    broken: list[str] = []

    if breaks == "claim's commit":
        real_write, real_claim = dispatcher.sender.write, dispatcher.sender.claim
        claims: list[int] = []

        def claim(*args, **kwargs):  # type: ignore[no-untyped-def]
            rows = real_claim(*args, **kwargs)
            claims.append(len(rows))
            return rows

        @contextmanager
        def write(engine: Engine):  # type: ignore[no-untyped-def]
            with real_write(engine) as conn:
                yield conn
            if claims and not broken:  # the claim committed; its answer is lost on the way
                broken.append(breaks)
                raise cut

        monkeypatch.setattr(dispatcher.sender, "write", write)
        monkeypatch.setattr(dispatcher.sender, "claim", claim)
    elif breaks == "building the messages":
        real_build = dispatcher.sender.build_messages

        def build_messages(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not broken:
                broken.append(breaks)
                raise cut
            return real_build(*args, **kwargs)

        monkeypatch.setattr(dispatcher.sender, "build_messages", build_messages)
    channel = Recording()
    clock.set(SLOT)
    coso = Dispatcher(engine, settings, clock, channels={"web": channel})
    if breaks == "the channel's rules":
        coso.senders["web"].rules = Screening(cut)
    coso.fire()
    with pytest.raises(OperationalError):
        coso.senders["web"].send_due()
    assert delivery_states(engine) == {"sending": 3}
    assert channel.sent == []
    coso.drain()
    assert delivery_states(engine) == {"delivered": 3}
    assert sorted(channel.sent) == sorted(set(channel.sent)) and len(channel.sent) == 3
    with engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM delivery")).scalars().all()
    assert attempts == [1, 1, 1]  # the broken round's claim is not counted as an attempt


def test_a_delivery_that_cannot_be_prepared_fails_alone_and_the_rest_of_its_batch_goes_out(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the database: a fault of one delivery. Retrying the batch would hold back the
    others for ever (and fill the log)."""
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    real = dispatcher.sender.build_messages
    poisoned: list[int] = []

    def build_messages(engine_: Engine, claimed):  # type: ignore[no-untyped-def]
        if not poisoned:
            poisoned.append(claimed[0].id)
        if any(d.id == poisoned[0] for d in claimed):
            raise ValueError("a template the engine cannot read")
        return real(engine_, claimed)

    monkeypatch.setattr(dispatcher.sender, "build_messages", build_messages)
    channel = Recording()
    clock.set(SLOT)
    coso = Dispatcher(engine, settings, clock, channels={"web": channel})
    coso.tick()
    assert delivery_states(engine) == {"delivered": 2, "failed": 1}
    assert len(channel.sent) == 2 and poisoned[0] not in channel.sent
    with engine.connect() as conn:
        why = conn.execute(
            text("SELECT last_error FROM delivery WHERE id = :d"), {"d": poisoned[0]}
        ).scalar()
        requeued = conn.execute(
            text("SELECT count(*) FROM activity_entry WHERE event = 'requeued'")
        ).scalar()
    assert "a template the engine cannot read" in why and requeued == 0


def test_a_second_loop_beside_a_hanging_one_takes_nothing_from_it(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supervisor starts a loop again when one hangs (the database slow to answer,
    say); the hanging one may still send its batch: the new one must not send it too."""
    import threading

    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    real = dispatcher.sender.build_messages
    inside, go_on = threading.Event(), threading.Event()

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        inside.set()
        go_on.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatcher.sender, "build_messages", slow)
    channel = Recording()
    clock.set(SLOT)
    coso = Dispatcher(engine, settings, clock, channels={"web": channel})
    coso.fire()
    sender = coso.senders["web"]
    hanging = threading.Thread(target=sender.send_due)
    hanging.start()
    assert inside.wait(30)
    assert sender.send_due() == 0  # the new loop's round: nothing taken, nothing requeued
    assert delivery_states(engine) == {"sending": 3}
    go_on.set()
    hanging.join(30)
    coso.drain()
    assert delivery_states(engine) == {"delivered": 3}
    assert sorted(channel.sent) == sorted(set(channel.sent)) and len(channel.sent) == 3
