"""SIGKILL in the middle of an SMS blast, then a restart: no recipient messaged twice; what was
in flight is `unknown` until `coso sms reconcile` settles it from the gateway's list."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from channels.registry import settings_of
from channels.sms.channel import SmsChannel
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.service import Dispatcher
from schedules.adhoc import add_blast
from tests.conftest import free_port
from tests.helpers import wait_for
from tests.sms import (
    add_recipients,
    e164,
    import_sms_plan,
    log_events,
    sms_settings,
    states,
)
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

RECIPIENTS = 300
ROOT = Path(__file__).resolve().parent.parent


def _env(settings: Settings, gateway: str) -> dict[str, str]:
    env = {
        **os.environ,
        "COSO_DATABASE__URL": settings.database.url,
        "COSO_SERVER__PORT": str(free_port()),
        "COSO_DISPATCHER__CLAIM_BATCH": "20",
        "COSO_CHANNELS__SMS__ACCOUNT_SID": ACCOUNT_SID,
        "COSO_CHANNELS__SMS__AUTH_TOKEN": AUTH_TOKEN,
        "COSO_CHANNELS__SMS__BASE_URL": gateway,
        "COSO_CHANNELS__SMS__SENDER": "UBND VQuan",
        "COSO_CHANNELS__SMS__RATE_PER_SECOND": "1000",
        "COSO_CHANNELS__SMS__CONCURRENCY": "4",
        "COSO_CHANNELS__SMS__STATUS_CALLBACKS": "false",
        "COSO_CHANNELS__SMS__QUIET_START": "00:00",
        "COSO_CHANNELS__SMS__QUIET_END": "00:00",
    }
    env.pop("COSO_CONFIG", None)
    return env


def test_sigkill_mid_blast_then_reconcile_messages_nobody_twice(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    add_recipients(engine, tmp_path, RECIPIENTS)
    plan = import_sms_plan(engine, settings, tmp_path)
    everyone = {e164(n) for n in range(RECIPIENTS)}
    with TwilioServer() as gateway:
        gateway.behaviour.callbacks = False
        gateway.behaviour.create_delay = 0.04  # a slow gateway: requests are in flight
        env = _env(settings, gateway.url)
        blast = add_blast(
            engine, plan, "nhac-lich", "sms", {"groups": ["g"]}, SystemClock().now(),
            validity=timedelta(hours=6),
        )  # fmt: skip
        log = (tmp_path / "serve.log").open("ab")
        serve = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            # mid-batch (batches of 20): some of the claimed batch sent, some not yet
            wait_for(lambda: len(gateway.creates) >= 107, 60, "107 messages at the gateway")
            os.kill(serve.pid, signal.SIGKILL)
            serve.wait(10)
        finally:
            if serve.poll() is None:
                serve.kill()
        time.sleep(0.5)  # requests the gateway was answering finish there
        at_kill = Counter(gateway.creates)
        assert set(at_kill.values()) == {1}
        assert states(engine, blast.id).get("sending", 0) > 0, "nothing was in flight"

        # restart: the dead process's claims are settled, the rest of the blast goes out
        sms_settings(settings, gateway.url, concurrency=4, status_callbacks=False)
        settings.dispatcher.lease = "1s"
        clock = SystemClock()
        channel = SmsChannel(settings_of(settings, "sms"), "http://coso.test", clock.now)
        dispatcher = Dispatcher(engine, settings, clock, channels={"sms": channel})
        time.sleep(1.5)  # the dead worker's lease runs out
        dispatcher.start()
        try:
            wait_for(
                lambda: set(states(engine, blast.id)) <= {"sent", "unknown"},
                60,
                "the rest of the blast",
            )
            unknown = states(engine, blast.id)["unknown"]
            assert unknown > 0
            assert set(Counter(gateway.creates).values()) == {1}  # nobody twice
            assert len(log_events(engine, event="unknown")) == unknown

            result = CliRunner().invoke(app, ["sms", "reconcile"], env=env)
            assert result.exit_code == 0, result.output
            assert f"{unknown} unknown message(s) looked up" in result.output
            wait_for(lambda: states(engine, blast.id) == {"sent": RECIPIENTS}, 60, "all sent")
        finally:
            dispatcher.stop()
        sent = Counter(gateway.creates)
    assert set(sent) == everyone and set(sent.values()) == {1}
    reconciled = log_events(engine, event="reconciled")
    assert len(reconciled) == unknown
    found = [e for e in reconciled if "found at the gateway" in (e.detail or "")]
    resent = [e for e in reconciled if "never left coso" in (e.detail or "")]
    assert len(found) + len(resent) == unknown
    assert found, "no in-flight message had reached the gateway"
    assert resent, "every claimed message had reached the gateway"
