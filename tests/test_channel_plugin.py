"""A channel from a separate package, installed through the `coso.channels` entry point alone
(no edit to coso), driven end to end: plan import, firing, sending, an inbound outcome by
provider id that overtakes the send's record, a forged one refused, all in the log."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from channels import registry
from channels.base import Outcome
from coso.clock import ManualClock
from coso.config import Settings
from coso.db import migrate
from coso.errors import InputError, InputErrors
from coso.migrations import CHANNEL_FOLDERS
from dispatcher import transitions
from dispatcher.host import EngineHost
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.plans import write_plan

PACKAGE = Path(__file__).parent / "board_channel"

BOARD_PLAN = """\
[plan]
number = "12/KH-UBND"
title = "Tuyên truyền trên bảng điện tử"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "tb"
title = "Thông báo"
body = "Lịch tiếp dân tại {{ unit.name }}"
state = "approved"

[[endpoints]]
channel = "board"
address = "bang-06040"
unit = "06040"

[[endpoints]]
channel = "board"
address = "bang-06046"
unit = "06046"

[[schedules]]
name = "Bảng tin sáng"
content = "tb"
channel = "board"
targets = { endpoints = ["bang-06040", "bang-06046"] }
start = 2021-05-03T07:00:00
validity = "2h"
"""


def _forget_plugins() -> None:
    registry.plugins.cache_clear()
    transitions._outcome_update.cache_clear()


@pytest.fixture
def board_installed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """The package and its dist-info on sys.path: what `pip install coso-board` leaves.
    The test's database (and the template databases the other tests of this process copy)
    are made before: made with the package installed, a template would carry its migration
    into every later test, which no longer knows it."""
    if "db_url" in request.fixturenames:
        request.getfixturevalue("db_url")
    site = tmp_path / "site"
    shutil.copytree(PACKAGE / "coso_board", site / "coso_board")
    info = site / "coso_board-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: coso-board\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[coso.channels]\nboard = coso_board.plugin:plugin\n")
    sys.path.insert(0, str(site))
    _forget_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        board_migrations = str(site / "coso_board" / "migrations")
        if board_migrations in CHANNEL_FOLDERS:
            CHANNEL_FOLDERS.remove(board_migrations)
        for name in [m for m in sys.modules if m.startswith("coso_board")]:
            del sys.modules[name]
        if "board_shown" in SQLModel.metadata.tables:  # the package is gone: so is its table
            SQLModel.metadata.remove(SQLModel.metadata.tables["board_shown"])
        _forget_plugins()


def _log(engine: Engine) -> list[tuple[str, str | None, str]]:
    A = ActivityEntry.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(A.c.event, A.c.state, A.c.detail).where(A.c.channel == "board").order_by(A.c.id)
        ).all()
    return [(e, s, d or "") for e, s, d in rows]


def test_board_channel_from_its_own_package_runs_end_to_end(
    board_installed: None, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    assert "board" in registry.names()
    migrate(engine)  # the board package's own migration branch, beside coso's
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM board_shown")).scalar_one() == 0
    settings.channels["board"] = {"controller": "http://127.0.0.1:30080"}
    clock = ManualClock(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))  # 06:00 on 3/5 in Hà Nội
    import_plan_file(engine, settings, write_plan(tmp_path, BOARD_PLAN), clock.now())

    dispatcher = Dispatcher(engine, settings, clock)
    assert set(dispatcher.channels) >= {"board", "web"}
    clock.advance(timedelta(hours=1, seconds=1))  # past 07:00
    created = dispatcher.fire()
    sent = dispatcher.drain()
    dispatcher.stop()
    assert (created, sent) == (2, 2), _log(engine)
    with engine.connect() as conn:
        shown = conn.execute(text("SELECT board, text FROM board_shown")).all()
    assert shown, _log(engine)

    assert sorted(b for b, _ in shown) == ["bang-06040", "bang-06046"]
    assert any("Thất Khê" in t for _, t in shown)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.__table__)).all()
    # `displayed` came before the send recorded its id: it waited, and applied after.
    assert {(r.state, r.provider_id) for r in rows} == {
        ("displayed", f"board-msg-{r.id}") for r in rows
    }
    log = _log(engine)
    assert [e for e, _, _ in log].count("queued") == 2
    assert [e for e, _, _ in log].count("sent") == 2
    assert [(e, s) for e, s, _ in log].count(("displayed", "displayed")) == 2

    # A forged report: board bang-06046 about the delivery of bang-06040.
    host = EngineHost(engine, settings, clock)
    first = min(rows, key=lambda r: r.id)
    other = max(rows, key=lambda r: r.id)
    received = host.receive(
        [
            Outcome(
                first.id,
                "failed",
                "failed",
                clock.now(),
                "board:bang-06046",
                endpoint_id=other.endpoint_id,
                inbound=True,
            )
        ]
    )
    assert not received.applied and len(received.rejected) == 1
    rejected = [d for e, _, d in _log(engine) if e == "rejected"]
    assert rejected == [
        f"rejected 'failed' from board bang-06046 about delivery {first.id}, "
        "which was addressed to board bang-06040"
    ]
    with engine.connect() as conn:
        state = conn.scalar(select(Delivery.__table__.c.state).where(Delivery.id == first.id))
    assert state == "displayed"


def test_coso_channels_lists_the_installed_channel_and_what_it_needs(
    board_installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatcher.cli.app import app

    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(app, ["channels"])
    assert listed.exit_code == 0, listed.output
    line = next(x for x in listed.output.splitlines() if x.startswith("│ board"))
    assert "chưa" in line
    assert "board: set channels.board.controller" in listed.output


def test_a_schedule_on_a_channel_not_set_up_is_refused_at_import(
    board_installed: None, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(InputErrors) as refused:
        import_plan_file(
            engine, settings, write_plan(tmp_path, BOARD_PLAN), datetime(2021, 5, 1, tzinfo=UTC)
        )
    assert "schedules[0].channel" in str(refused.value)
    assert "channels.board.controller" in str(refused.value)


def test_a_schedule_on_a_channel_nobody_installed_names_the_installed_ones(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises((InputErrors, InputError)) as refused:
        import_plan_file(
            engine, settings, write_plan(tmp_path, BOARD_PLAN), datetime(2021, 5, 1, tzinfo=UTC)
        )
    text = str(refused.value)
    assert "'board'" in text and "registered: boards, loudspeaker, sms, station, web" in text
