"""Scale-out over PostgreSQL: several `coso serve --role dispatcher` processes and a `--role
web` one on one database. A claim never waits for another's deliveries; the timer moves to
another dispatcher when its holder is killed; two dispatchers send a 10,000-player
broadcast and a 20,000-text blast each exactly once; the web app apart fires nothing and
serves what the dispatchers send; player events reach one dispatcher, status every one."""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, create_engine, text

from channels.endpoints import add_endpoints
from channels.loudspeaker.channel import Inbound, LoudspeakerChannel
from channels.loudspeaker.mqtt import parse_broker_url
from channels.loudspeaker.settings import LoudspeakerSettings
from channels.sms.recipients import Recipient, save_recipients
from coso.clock import ManualClock, SystemClock
from coso.config import load_settings
from coso.db import make_engine
from coso.setup import open_database
from dispatcher.service import Dispatcher
from dispatcher.transitions import claim
from schedules.importer import import_plan_file
from tests.conftest import PG_ADMIN_URL, _pg_url, free_port
from tests.fault_services import Mosquitto, kill9, serve, stop, wait_until
from tests.helpers import SLOT, Accepting
from tests.plans import write_plan
from tests.scale_rig import ScaleRig, health, healthy
from tests.sms import e164
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT = "06040"
pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database with the current units: scale-out is
    PostgreSQL's (advisory locks, SKIP LOCKED)."""
    name = f"coso_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def _config(tmp_path: Path, url: str, port: int, extra: str = "") -> Path:
    config = tmp_path / "coso.toml"
    config.write_text(
        f"""[database]
url = "{url}"
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
[media]
dir = "{tmp_path}/media"
[console]
secret_file = "{tmp_path}/session-secret"
[timer]
reconcile_every = "1s"
[dispatcher]
idle_poll = 0.05
heartbeat = "1s"
lease = "5s"
timer_retry = "1s"
[channels.web]
rate_per_second = 10000
concurrency = 4
{extra}"""
    )
    return config


def _bulletin_plan(starts: list[datetime], number: str = "77/KH-UBND") -> str:
    schedules = "".join(
        f"""
[[schedules]]
name = "Bản tin {n}"
content = "tin"
channel = "web"
targets = {{ units = ["{UNIT}"] }}
start = {start.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}
validity = "1h"
misfire_grace = "10m"
"""
        for n, start in enumerate(starts, 1)
    )
    return f"""\
[plan]
number = "{number}"
title = "Bản tin xã"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "tin"
title = "Thông báo lịch tiêm chủng"
body = "Kính gửi bà con: lịch tiêm chủng tuần này."
state = "approved"
{schedules}"""


def _dispatcher(
    config: Path, tmp_path: Path, name: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = ["--role", "dispatcher", "--port", str(port)] + (["--name", name] if name else [])
    process = serve(config, tmp_path / f"{name or 'unnamed'}.log", args=args)
    return process, port


def test_a_claim_while_another_is_open_takes_other_deliveries_without_waiting(
    pg_url: str, tmp_path: Path
) -> None:
    settings = load_settings(None, database={"url": pg_url})
    engine = make_engine(pg_url)
    clock = ManualClock(SLOT - timedelta(days=1))
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:{UNIT}-{i}", "unit_code": UNIT}
            for i in range(7)
        ],
        clock.now(),
    )
    import_plan_file(engine, settings, write_plan(tmp_path), clock.now())
    clock.set(SLOT)
    Dispatcher(engine, settings, clock, channels={"web": Accepting("web", settings)}).fire()
    try:
        with engine.connect() as first:
            held = claim(first, "web", clock.now(), 6, "first:1:a")  # its transaction open
            with engine.connect() as second:
                # Waiting on the first's rows would fail here instead of hanging.
                second.execute(text("SET lock_timeout = '2s'"))
                rest = claim(second, "web", clock.now(), 10, "second:2:b")
                second.commit()
            first.commit()
    finally:
        engine.dispose()
    assert len(held) == 6
    assert len(rest) == 4
    assert not {r.id for r in held} & {r.id for r in rest}


def test_when_the_dispatcher_running_the_timer_is_killed_another_fires_the_next_slots_once(
    pg_url: str, tmp_path: Path
) -> None:
    slots, every, endpoints = 6, 3, 30
    config = _config(tmp_path, pg_url, free_port())
    settings = load_settings(config)
    engine = open_database(settings)
    now = SystemClock().now()
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": f"bulletin:{UNIT}-{i}", "unit_code": UNIT}
            for i in range(endpoints)
        ],
        now,
    )
    first = (now + timedelta(seconds=15)).replace(microsecond=0)
    starts = [first + timedelta(seconds=every * n) for n in range(slots)]
    import_plan_file(engine, settings, write_plan(tmp_path, _bulletin_plan(starts)), now)
    processes = {name: _dispatcher(config, tmp_path, name) for name in ("d1", "d2")}
    try:
        wait_until(
            lambda: all(healthy(port) for _, port in processes.values()), 60, "both dispatchers"
        )
        holders = [
            name
            for name, (_, port) in processes.items()
            if health(port)["parts"]["timer"]["detail"].startswith("reconciled")
        ]
        assert len(holders) == 1, [health(port)["parts"]["timer"] for _, port in processes.values()]
        holder = holders[0]
        survivor = next(name for name in processes if name != holder)
        fired = "SELECT count(*) FROM occurrence"
        wait_until(lambda: _count(engine, fired) >= 2, 60, "the first two slots", 0.02)
        kill9(processes[holder][0])
        killed_at = SystemClock().now()
        assert _count(engine, fired) < slots, "the kill came after the last slot"
        posts = "SELECT count(*) FROM bulletin_post"
        wait_until(
            lambda: _count(engine, posts) >= slots * endpoints, 90, "every slot's posts", 0.1
        )
        time.sleep(1.0)  # anything that would happen twice has time to show itself
        with engine.connect() as conn:
            occurrences = conn.execute(
                text("SELECT schedule_id, scheduled_for, fired_at, status FROM occurrence")
            ).all()
            deliveries, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT (occurrence_id, endpoint_id)) FROM delivery")
            ).one()
            published = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT delivery_id) FROM activity_entry "
                    "WHERE event = 'published'"
                )
            ).one()
        post_count = _count(engine, posts)
        distinct_posts = _count(engine, "SELECT count(DISTINCT delivery_id) FROM bulletin_post")
    finally:
        for process, _ in processes.values():
            stop(process)
        engine.dispose()
    # Every slot fired once, by one of the two, none recorded missed.
    assert len(occurrences) == slots
    assert len({o.schedule_id for o in occurrences}) == slots
    assert {o.status for o in occurrences} == {"due"}
    # The slots due after the kill were fired by the survivor within its takeover time:
    # timer_retry (1 s) once PostgreSQL freed the lock (at once: the killed process's
    # connection closed), and the timer's start; 10 s leaves room for a loaded machine.
    later = [o for o in occurrences if o.scheduled_for > killed_at]
    assert later, "no slot was due after the kill"
    for o in later:
        assert o.fired_at - o.scheduled_for < timedelta(seconds=10), o
    assert (deliveries, distinct) == (slots * endpoints, slots * endpoints)
    assert (post_count, distinct_posts) == (slots * endpoints, slots * endpoints)
    assert tuple(published) == (slots * endpoints, slots * endpoints)
    survivor_log = (tmp_path / f"{survivor}.log").read_text()
    assert "took over the timer" in survivor_log
    assert "this process runs the timer" in (tmp_path / f"{holder}.log").read_text()


def test_two_dispatchers_send_10000_players_and_20000_texts_each_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    with Mosquitto() as broker, ScaleRig(tmp_path, pg_url, broker.url, 10_000, 20_000) as rig:
        run = rig.run(dispatchers=2)
    assert run.lost == 0, (run.notes, run.states)
    assert run.duplicates == 0, (run.notes, run.states)
    assert run.states == {"loudspeaker:played": 10_000, "sms:sent": 20_000}
    # Both took their part of the texts (the gateway answers each in turn: a long queue).
    assert set(run.claimed) == {"d1", "d2"}, run.claimed
    assert all(run.claimed[name]["sms"] > 0 for name in ("d1", "d2")), run.claimed


def test_the_web_app_apart_fires_nothing_and_serves_what_a_dispatcher_apart_sends(
    pg_url: str, tmp_path: Path
) -> None:
    web_port = free_port()
    with TwilioServer(callback_workers=2) as gateway:
        config = _config(
            tmp_path,
            pg_url,
            web_port,
            f"""[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "{gateway.url}"
sender = "UBND VQuan"
quiet_start = "00:00"
quiet_end = "00:00"
daily_cap = 0
""",
        )
        settings = load_settings(config)
        engine = open_database(settings)
        now = SystemClock().now()
        add_endpoints(
            engine,
            [
                {"channel": "web", "address": f"bulletin:{UNIT}-{i}", "unit_code": UNIT}
                for i in range(3)
            ],
            now,
        )
        save_recipients(engine, [Recipient(e164(n), f"CD {n}", UNIT, (), n) for n in range(5)], now)
        slot = (now + timedelta(seconds=6)).replace(microsecond=0)
        plan = _bulletin_plan([slot]) + (
            '\n[[content]]\nkey = "nhan"\nkind = "text"\ntitle = "Nhắc"\n'
            'body = "Kinh gui {{ recipient.name }}: lich tiem chung tuan nay."\n'
            'state = "approved"\n\n[[schedules]]\nname = "Tin nhắn"\ncontent = "nhan"\n'
            f'channel = "sms"\ntargets = {{ units = ["{UNIT}"] }}\n'
            f"start = {slot.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}\n"
            'validity = "1h"\nmisfire_grace = "10m"\n'
        )
        import_plan_file(engine, settings, write_plan(tmp_path, plan), now)
        web = serve(config, tmp_path / "web.log", args=["--role", "web", "--port", str(web_port)])
        dispatcher = None
        try:
            wait_until(lambda: healthy(web_port), 60, "the web app")
            assert set(health(web_port)["parts"]) == {"database"}
            console = requests.get(f"http://127.0.0.1:{web_port}/login", timeout=10)
            assert console.status_code == 200
            assert "Đăng nhập" in console.text
            wait_until(lambda: SystemClock().now() > slot + timedelta(seconds=3), 30, "the slot")
            assert _count(engine, "SELECT count(*) FROM occurrence") == 0  # no timer here
            dispatcher, port = _dispatcher(config, tmp_path, "d1")
            wait_until(lambda: healthy(port), 60, "the dispatcher")
            parts = set(health(port)["parts"])
            assert {"timer", "sender.web", "sender.sms"} <= parts
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200
            assert requests.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 404
            delivered = (
                "SELECT count(*) FROM delivery WHERE channel = 'sms' AND state = 'delivered'"
            )
            # The gateway's delivery reports come in through the web app.
            wait_until(lambda: _count(engine, delivered) == 5, 60, "the texts' delivery reports")
            page = requests.get(
                f"http://127.0.0.1:{web_port}/bulletin", params={"unit": UNIT}, timeout=10
            )
            assert page.status_code == 200
            assert "Thông báo lịch tiêm chủng" in page.text
            assert _count(engine, "SELECT count(*) FROM bulletin_post") == 3
            assert Counter(gateway.creates) == {e164(n): 1 for n in range(5)}
        finally:
            if dispatcher is not None:
                stop(dispatcher)
            stop(web)
            engine.dispose()


def test_a_second_dispatcher_under_a_name_already_running_is_refused(
    pg_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, pg_url, free_port())
    first, port = _dispatcher(config, tmp_path, None)
    try:
        wait_until(lambda: healthy(port), 60, "the first dispatcher")
        second, _ = _dispatcher(config, tmp_path, None)
        assert second.wait(60) == 2
        said = (tmp_path / "unnamed.log").read_text()
        assert "--name = '': một bộ điều phối khác đang chạy không có tên" in said
        named, named_port = _dispatcher(config, tmp_path, "d1")
        try:
            wait_until(lambda: healthy(named_port), 60, "a dispatcher with a name of its own")
            again, _ = _dispatcher(config, tmp_path, "d1")
            assert again.wait(60) == 2
            said = (tmp_path / "d1.log").read_text()
            assert "--name = 'd1': một bộ điều phối khác đang chạy dưới tên này" in said
        finally:
            stop(named)
    finally:
        stop(first)


def test_each_player_event_reaches_one_dispatcher_and_each_status_every_one(
    broker_url: str,
) -> None:
    tag = uuid.uuid4().hex[:8]
    cfg = LoudspeakerSettings(
        broker={"url": broker_url}, topic_prefix=f"share-{tag}/v1", client_id=f"coso-{tag}"
    )
    channels = [
        LoudspeakerChannel(
            cfg, broker_url, "http://127.0.0.1:9", SystemClock().now, role="events", instance=name
        )
        for name in ("d1", "d2")
    ]
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"player-{tag}")
    try:
        for channel in channels:
            assert channel.wait_subscribed(20), "no subscription to player events"
        assert all(c.shares_events for c in channels), "the broker does not speak MQTT 5"
        assert len({c.client_id for c in channels}) == 2
        address = parse_broker_url(broker_url)
        publisher.connect(address.host, address.port)
        publisher.loop_start()
        infos = [
            publisher.publish(
                f"share-{tag}/v1/players/loa-{n:03d}/events", b'{"v": 1, "events": []}', qos=1
            )
            for n in range(40)
        ]
        infos.append(
            publisher.publish(
                f"share-{tag}/v1/players/loa-000/status", b'{"v": 1, "state": "online"}', qos=1
            )
        )
        for info in infos:
            info.wait_for_publish(10)
        got: dict[int, list[Inbound]] = {0: [], 1: []}

        def arrived() -> bool:
            for n, channel in enumerate(channels):
                got[n] += channel.take_inbound(1000, 0.01)
            return sum(len(items) for items in got.values()) >= 42

        wait_until(arrived, 20, "the events and the status")
        time.sleep(1.0)  # a duplicate would arrive meanwhile
        arrived()
    finally:
        publisher.loop_stop()
        for channel in channels:
            channel.close()
    events = [i.player for items in got.values() for i in items if i.kind == "events"]
    statuses = [[i.player for i in items if i.kind == "status"] for items in got.values()]
    assert sorted(events) == [f"loa-{n:03d}" for n in range(40)]
    assert statuses == [["loa-000"], ["loa-000"]]


def test_serve_refuses_an_unknown_role_and_the_demo_apart_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    wrong = runner.invoke(app, ["serve", "--role", "timer"])
    assert wrong.exit_code == 2
    assert "--role = 'timer': phải là một trong all, dispatcher, web" in wrong.output
    demo = runner.invoke(app, ["serve", "--demo", "--role", "web"])
    assert demo.exit_code == 2
    assert "--demo = 'web': bản demo chỉ chạy với --role all" in demo.output
    named = runner.invoke(app, ["serve", "--role", "dispatcher", "--name", "xã 1"])
    assert named.exit_code == 2
    assert "--name = 'xã 1'" in named.output
    assert not (tmp_path / "coso-data").exists()  # refused before anything was written
