"""Liveness: `coso serve` runs whatever the loudspeaker broker does, `/healthz` names the part
that is down, and a part that dies is started again and delivers afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator

from channels.loudspeaker.mqtt import LocalBroker, free_port
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.models import ActivityEntry
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from tests.conftest import ServerThread
from tests.helpers import wait_for
from tests.loudspeakers import (
    clip,
    count,
    import_broadcast,
    log_count,
    players,
    slot_in,
    speaker_settings,
    states,
)
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def _health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        answer = httpx.get(f"{url}/healthz", timeout=10)
    except httpx.TransportError:
        return 0, {}
    return answer.status_code, answer.json()


def _part(url: str, name: str) -> dict[str, Any]:
    return _health(url)[1].get("parts", {}).get(name, {})


def _config(settings: Settings, tmp_path: Path, port: int, broker_port: int) -> Path:
    speaker = settings.channels["loudspeaker"]
    config = tmp_path / "coso.toml"
    config.write_text(
        f"""\
[database]
url = "{settings.database.url}"

[server]
port = {port}
public_url = "http://127.0.0.1:{port}"

[media]
dir = "{settings.media.dir}"

[channels.loudspeaker]
topic_prefix = "{speaker["topic_prefix"]}"
client_id = "{speaker["client_id"]}"
events_process = true
ack_timeout = "2s"

[channels.loudspeaker.broker]
url = "mqtt://127.0.0.1:{broker_port}"
keepalive = 5

[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "http://127.0.0.1:{free_port()}"
sender = "UBND"
"""
    )
    return config


def test_serve_with_the_broker_away_serves_the_rest_and_plays_once_the_broker_comes(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    port, broker_port = free_port(), free_port()  # nothing listens on broker_port yet
    settings = speaker_settings(settings, f"mqtt://127.0.0.1:{broker_port}", tmp_path)
    settings.server.public_url = f"http://127.0.0.1:{port}"
    ids = ["loa-a", "loa-b"]
    slot = slot_in(2)
    import_broadcast(engine, settings, tmp_path, ids, slot, clip(tmp_path, 0.6))
    config = _config(settings, tmp_path, port, broker_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "--config", str(config), "serve"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    broker = LocalBroker(port=broker_port, prefer="mosquitto")
    group = None
    try:
        wait_for(lambda: _health(url)[0] != 0, 60, "coso serve to answer")
        assert httpx.get(f"{url}/bulletin", timeout=10).status_code == 200
        form = {"MessageSid": "SM" + "0" * 32, "From": "+84912345678", "Body": "xin chao"}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{url}/sms/inbound", form)
        inbound = httpx.post(
            f"{url}/sms/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert inbound.status_code == 200, inbound.text
        status, report = _health(url)
        assert status == 503
        assert report["parts"]["loudspeaker.broker"]["ok"] is False
        assert f"127.0.0.1:{broker_port}" in report["parts"]["loudspeaker.broker"]["detail"]
        assert report["parts"]["database"]["ok"] is True
        # Due while the broker is away: the deliveries wait, nothing failed.
        wait_for(lambda: len(states(engine)) == 2, 60, "the fan-out of the broadcast")
        wait_for(lambda: SystemClock().now() > slot + timedelta(seconds=3), 10, "the slot")
        assert serve.poll() is None, log.read_text()
        assert set(states(engine).values()) == {"pending"}

        broker.start()
        group = players(settings, ids, tmp_path).start()
        wait_for(lambda: log_count(engine, "played") >= 2, 90, "both players to play")
        wait_for(lambda: _health(url)[0] == 200, 30, "/healthz to say ok")
        assert log_count(engine, "failed") == 0
    finally:
        if group is not None:
            group.stop()
        serve.terminate()
        serve.wait(20)
        broker.stop()
    assert serve.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]


@contextmanager
def _serving(engine: Engine, settings: Settings) -> Iterator[tuple[Dispatcher, str]]:
    """The dispatcher with its supervisor, and the web app reporting its health."""
    running: list[Dispatcher] = []
    app = create_app(engine, settings, health=lambda: running[0].health())
    with ServerThread(app) as web:
        settings.server.public_url = web.url  # where players fetch media
        dispatcher = Dispatcher(engine, settings, SystemClock())
        running.append(dispatcher)
        dispatcher.start()
        try:
            yield dispatcher, web.url
        finally:
            dispatcher.stop()


def _played(engine: Engine, plan_id: int) -> int:
    return count(
        engine,
        select(func.count()).where(
            ActivityEntry.event == "played", ActivityEntry.plan_id == plan_id
        ),
    )


@pytest.fixture
def speakers(settings: Settings, broker_url: str, tmp_path: Path) -> Settings:
    settings = speaker_settings(settings, broker_url, tmp_path)
    settings.timer.reconcile_every = "1s"
    return settings


def _after_restart(
    engine: Engine, settings: Settings, tmp_path: Path, url: str, ids: list[str]
) -> None:
    """/healthz says ok again, and a broadcast made now plays on every player."""
    wait_for(lambda: _health(url)[0] == 200, 60, "/healthz to say ok again")
    plan = import_broadcast(
        engine,
        settings,
        tmp_path,
        ids,
        slot_in(2),
        clip(tmp_path, 0.6, freq=550),
        number=f"{uuid.uuid4().hex[:6]}/KH",
    )
    wait_for(lambda: _played(engine, plan) >= len(ids), 60, "the broadcast after the restart")


def test_killed_events_process_shows_in_healthz_and_is_started_again(
    engine: Engine, speakers: Settings, tmp_path: Path
) -> None:
    ids = ["loa-a"]
    group = players(speakers, ids, tmp_path).start()
    try:
        with _serving(engine, speakers) as (dispatcher, url):
            wait_for(lambda: _health(url)[0] == 200, 60, "/healthz to say ok")
            first = dispatcher.services["loudspeaker"].events_process  # type: ignore[attr-defined]
            os.kill(first.pid, signal.SIGKILL)
            wait_for(
                lambda: _part(url, "loudspeaker.events").get("ok") is False,
                10,
                "/healthz to report the events process dead",
                every=0.02,
            )
            assert _health(url)[0] == 503
            wait_for(
                lambda: dispatcher.services["loudspeaker"].events_process is not first,  # type: ignore[attr-defined]
                30,
                "a new events process",
            )
            _after_restart(engine, speakers, tmp_path, url, ids)
    finally:
        group.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_sender_loop_that_dies_shows_in_healthz_and_is_started_again(
    engine: Engine, speakers: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dispatcher.supervisor.SUPERVISE_EVERY", 3.0)
    ids = ["loa-a"]
    group = players(speakers, ids, tmp_path).start()
    try:
        with _serving(engine, speakers) as (dispatcher, url):
            wait_for(lambda: _health(url)[0] == 200, 60, "/healthz to say ok")
            sender = dispatcher.senders["loudspeaker"]
            real = sender.send_due

            def dies() -> int:
                monkeypatch.setattr(sender, "send_due", real)
                raise SystemExit  # ends the thread, as a bug outside `except Exception` would

            monkeypatch.setattr(sender, "send_due", dies)
            wait_for(
                lambda: _part(url, "sender.loudspeaker").get("ok") is False,
                10,
                "/healthz to report the sender loop ended",
                every=0.02,
            )
            assert _health(url)[0] == 503
            _after_restart(engine, speakers, tmp_path, url, ids)
    finally:
        group.stop()


def test_stopped_timer_shows_in_healthz_and_is_started_again(
    engine: Engine, speakers: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dispatcher.supervisor.SUPERVISE_EVERY", 3.0)
    ids = ["loa-a"]
    group = players(speakers, ids, tmp_path).start()
    try:
        with _serving(engine, speakers) as (dispatcher, url):
            wait_for(lambda: _health(url)[0] == 200, 60, "/healthz to say ok")
            assert _part(url, "timer")["ok"] is True
            stopped = dispatcher.timer
            assert stopped is not None
            stopped._scheduler.shutdown(wait=False)
            wait_for(
                lambda: _part(url, "timer").get("ok") is False,
                10,
                "/healthz to report the timer stopped",
                every=0.02,
            )
            assert _health(url)[0] == 503
            wait_for(lambda: dispatcher.timer is not stopped, 30, "a new timer")
            _after_restart(engine, speakers, tmp_path, url, ids)
    finally:
        group.stop()


def test_healthz_reports_each_part_with_its_detail_and_last_seen_time(
    engine: Engine, speakers: Settings, tmp_path: Path
) -> None:
    group = players(speakers, ["loa-a"], tmp_path).start()
    try:
        with _serving(engine, speakers) as (_dispatcher, url):
            wait_for(lambda: _health(url)[0] == 200, 60, "/healthz to say ok")
            report = _health(url)[1]
    finally:
        group.stop()
    assert report["status"] == "ok"
    names = set(report["parts"])
    assert {
        "database",
        "timer",
        "heartbeat",
        "sender.web",
        "sender.loudspeaker",
        "loudspeaker.broker",
        "loudspeaker.network",
        "loudspeaker.events",
        "loudspeaker.upkeep",
        "supervisor",
    } <= names
    for part in report["parts"].values():
        assert part["ok"] is True and part["detail"] and part["last_seen"]


def test_with_the_broker_away_loudspeaker_deliveries_wait_unsent_and_expire_in_time(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    away = f"mqtt://127.0.0.1:{free_port()}"
    speakers = speaker_settings(settings, away, tmp_path, events_process=False)
    plan = import_broadcast(
        engine, speakers, tmp_path, ["loa-a"], slot_in(1), clip(tmp_path, 0.6), validity="4s"
    )
    with _serving(engine, speakers) as (_dispatcher, url):
        wait_for(lambda: len(states(engine)) == 1, 30, "the fan-out")
        assert _part(url, "loudspeaker.broker")["ok"] is False
        wait_for(lambda: set(states(engine).values()) == {"expired"}, 30, "the expiry")
    with engine.connect() as conn:
        events = conn.scalars(
            select(ActivityEntry.event).where(ActivityEntry.plan_id == plan)
        ).all()
    assert "expired" in events
    assert not {"sent", "retry", "failed"} & set(events)
