"""SIGKILL in the middle of a 5,000-endpoint fan-out, then a restart: nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from channels.endpoints import add_endpoints
from channels.web.channel import BulletinPost
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from schedules.importer import import_plan_file
from tests.conftest import free_port
from tests.helpers import wait_for
from tests.plans import WEEKLY_PLAN, write_plan

ENDPOINTS = 5000
ROOT = Path(__file__).resolve().parent.parent


def _serve(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COSO_DATABASE__URL": settings.database.url,
        "COSO_SERVER__PORT": str(free_port()),
        "COSO_DISPATCHER__FANOUT_BATCH": "50",
        "COSO_DISPATCHER__CLAIM_BATCH": "50",
        "COSO_CHANNELS__WEB__RATE_PER_SECOND": "100000",
    }
    env.pop("COSO_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _count(engine: Engine, query) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.scalar(query) or 0


def test_sigkill_mid_fan_out_then_restart_leaves_exactly_one_delivery_and_post_per_endpoint(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    clock = SystemClock()
    communes = ["06040", "06046", "06112", "06001", "06019"]
    add_endpoints(
        engine,
        [
            {
                "channel": "web",
                "address": f"bulletin:{communes[i % 5]}-{i}",
                "unit_code": communes[i % 5],
            }
            for i in range(ENDPOINTS - 3)  # the plan file brings 3 more
        ],
        clock.now(),
    )
    start = (clock.now() + timedelta(seconds=3)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    plan_text = (
        WEEKLY_PLAN.replace("start = 2021-05-03T06:00:00", f"start = {start:%Y-%m-%dT%H:%M:%S}")
        .replace('rrule = "FREQ=WEEKLY;BYDAY=MO,TH"\n', "")
        .replace("period_end = 2021-12-31", "period_end = 2099-12-31")
    )
    import_plan_file(engine, settings, write_plan(tmp_path, plan_text), clock.now())
    deliveries = select(func.count()).select_from(Delivery)
    published = select(func.count()).select_from(BulletinPost)

    log = tmp_path / "serve.log"
    first = _serve(settings, log)
    try:
        wait_for(lambda: _count(engine, deliveries) > 0, 60, "the fan-out to begin", every=0.002)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = _count(engine, deliveries)
    assert 0 < at_kill < ENDPOINTS, f"kill landed after the fan-out ({at_kill} deliveries)"

    second = _serve(settings, log)
    try:
        wait_for(
            lambda: _count(engine, published) >= ENDPOINTS,
            120,
            "every endpoint's post",
            every=0.002,
        )
        done = select(func.count()).select_from(Delivery).where(Delivery.state == "delivered")
        wait_for(
            lambda: _count(engine, done) >= ENDPOINTS, 60, "every delivery recorded", every=0.002
        )
        time.sleep(0.5)  # let anything that would double show itself
    finally:
        second.terminate()
        second.wait(10)

    with engine.connect() as conn:
        assert conn.scalar(deliveries) == ENDPOINTS
        assert conn.scalar(select(func.count(func.distinct(Delivery.endpoint_id)))) == ENDPOINTS
        assert conn.scalar(published) == ENDPOINTS
        assert conn.scalar(select(func.count(func.distinct(BulletinPost.delivery_id)))) == ENDPOINTS
        outcomes = conn.execute(
            select(
                ActivityEntry.event,
                func.count(),
                func.count(func.distinct(ActivityEntry.delivery_id)),
            )
            .where(ActivityEntry.event.in_(["queued", "published"]))
            .group_by(ActivityEntry.event)
        ).all()
    assert {event: (n, distinct) for event, n, distinct in outcomes} == {
        "queued": (ENDPOINTS, ENDPOINTS),
        "published": (ENDPOINTS, ENDPOINTS),
    }, log.read_text()[-3000:]
