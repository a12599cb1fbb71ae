"""The report's outcome counts follow the activity log: after every kind of write that gives
a delivery a state — fan-out, sends, answers from the far end, failures, a resend, retries,
a crash, a round that broke, expiries, a slot coso missed — the counts kept with the log
are what counting the log itself gives; `coso report PLAN --check` says so, finds a count
that is wrong, and `--rebuild` counts again from the log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from typer.testing import CliRunner

from channels.base import Outcome
from channels.states import DELIVERED, FAILED, RETRY_WAIT, SENT
from coso.clock import ManualClock
from coso.config import Settings
from coso.db import write
from dispatcher.cli.app import app
from dispatcher.fanout import fan_out_pending
from dispatcher.outcome_counts import differences, recount
from dispatcher.queries import find_plan
from dispatcher.resend import resend_failed
from dispatcher.transitions import (
    apply_outcomes,
    claim,
    expire_overdue,
    recover_interrupted,
    requeue_unsent,
)
from schedules.firing import fire_due
from schedules.importer import import_plan_file
from tests.helpers import SLOT
from tests.plans import write_plan

UNITS = ("06040", "06046", "06112")
ENDPOINTS = "".join(
    f'[[endpoints]]\nchannel = "web"\naddress = "bulletin:{u}-{n}"\nunit = "{u}"\n\n'
    for u in UNITS
    for n in range(3)
)
PLAN = f"""\
[plan]
number = "7/KH-UBND"
title = "Bản tin cải cách hành chính"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "tin"
title = "Thủ tục mới"
body = "Kính gửi bà con."
state = "approved"

{ENDPOINTS}[[schedules]]
name = "Hằng ngày"
content = "tin"
channel = "web"
targets = {{ units = ["20"] }}
start = 2021-05-03T06:00:00
rrule = "FREQ=DAILY"
until = 2021-05-31
validity = "2h"
misfire_grace = "10m"
"""


def _agree(engine: Engine, step: str) -> None:
    assert differences(engine) == [], step


def test_the_counts_follow_the_log_through_every_kind_of_write(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, PLAN), clock.now())
    plan = find_plan(engine, "7/KH-UBND")

    def slot(day: int) -> list[int]:
        """Fire and fan out the slot of day `day` (0: 3 May), as the timer does."""
        clock.set(SLOT + timedelta(days=day, seconds=1))
        fire_due(engine, clock.now())
        fan_out_pending(engine, clock.now(), 4)  # batches of 4: several transactions
        with write(engine) as conn:
            return [d.id for d in claim(conn, "web", clock.now(), 100, "worker:1")]

    def answer(outcomes: list[Outcome]) -> None:
        with write(engine) as conn:
            apply_outcomes(conn, outcomes)

    ids = slot(0)
    _agree(engine, "fanned out and claimed")
    at = clock.now()
    answer([Outcome(i, SENT, "sent", at, "sender") for i in ids])
    answer(
        [Outcome(i, DELIVERED, "published", at, "site") for i in ids[:4]]
        + [Outcome(ids[4], FAILED, "undelivered", at, "site", error="410")]
        + [Outcome(i, FAILED, "failed", at, "site", error="503") for i in ids[5:7]]
        # two answers for one delivery in one batch: it counts once, under the last
        + [Outcome(ids[7], DELIVERED, "published", at, "site")]
        + [Outcome(ids[7], DELIVERED, "confirmed-again", at, "site")]
        + [Outcome(ids[8], SENT, "sent", at, "site")]  # a repeat: refused, no entry
    )
    _agree(engine, "answers")
    assert resend_failed(engine, plan.id, clock.now(), "biên tập") == 3
    _agree(engine, "resend")

    ids = slot(1)  # the second day's deliveries and the three sent again
    at = clock.now()
    answer(
        [Outcome(i, RETRY_WAIT, "retry", at, "sender", retry_at=at) for i in ids[:3]]
        + [Outcome(ids[3], FAILED, "failed", at, "sender", error="404")]
        + [Outcome(i, SENT, "sent", at, "sender") for i in ids[4:]]
    )
    _agree(engine, "retries")
    with write(engine) as conn:  # a worker dies holding some; another round breaks
        claim(conn, "web", clock.now(), 2, "worker:dead")
        recover_interrupted(conn, clock.now(), "web", False, ["worker:dead"])
        taken = claim(conn, "web", clock.now(), 100, "worker:2")
        requeue_unsent(conn, clock.now(), "web", "worker:2", [taken[0].id])
    _agree(engine, "crash and broken round")
    with write(engine) as conn:
        expire_overdue(conn, clock.now() + timedelta(hours=3))
    _agree(engine, "expiries")

    # coso was down for three days: those slots are found missed.
    clock.set(SLOT + timedelta(days=5, seconds=1))
    fire_due(engine, clock.now())
    fan_out_pending(engine, clock.now(), 100)
    _agree(engine, "missed slots")

    with engine.connect() as conn:
        counted = conn.execute(
            text("SELECT state, sum(n) FROM outcome_count GROUP BY state ORDER BY state")
        ).all()
    states = dict(counted)
    assert {"delivered", "failed", "missed", "expired", "unknown", "sent"} <= set(states)
    assert sum(states.values()) == 9 * 6  # nine endpoints, six slots: each delivery once


runner = CliRunner()


def test_check_finds_a_count_the_log_does_not_give_and_rebuild_counts_again(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path, monkeypatch: object
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, PLAN), clock.now())
    clock.set(SLOT + timedelta(seconds=1))
    fire_due(engine, clock.now())
    fan_out_pending(engine, clock.now(), 100)
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)  # type: ignore[attr-defined]

    agreed = runner.invoke(app, ["report", "7/KH-UBND", "--check"])
    assert agreed.exit_code == 0, agreed.output
    assert "khớp với nhật ký" in agreed.output

    with write(engine) as conn:
        conn.execute(text("UPDATE outcome_count SET n = n + 1 WHERE unit_code = '06046'"))
    wrong = runner.invoke(app, ["report", "7/KH-UBND", "--check"])
    assert wrong.exit_code == 1, wrong.output
    assert "web, đơn vị 06046" in wrong.output and "nhật ký 3, số đếm 4" in wrong.output
    assert "1 số đếm không khớp" in wrong.output

    rebuilt = runner.invoke(app, ["report", "7/KH-UBND", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "đã đếm lại" in rebuilt.output
    assert differences(engine) == []
    assert recount(engine) == 3  # one row per commune: three deliveries each, all pending
