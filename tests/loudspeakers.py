"""What the loudspeaker tests share: a real broker, a plan with players, coso running (web
app for media + dispatcher), and reference players that count what they play."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydub.generators import Sine
from sqlalchemy import Engine, func, select

from channels.loudspeaker.credentials import generation
from channels.loudspeaker.mqtt import LocalBroker, answers, parse_broker_url
from channels.loudspeaker.player.runtime import PlayerGroup
from channels.loudspeaker.player.sinks import NullSink
from channels.loudspeaker.protocol import Topics
from channels.loudspeaker.signing import command_key
from channels.registry import settings_of
from content.media import player_token, token_secret
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.queries import find_plan
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread, free_port
from tests.helpers import wait_for
from tests.plans import write_plan

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def shared_broker_url() -> tuple[str, LocalBroker | None]:
    """The broker at 127.0.0.1:1883 when it answers; else a private mosquitto (else amqtt)."""
    if answers("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883", None
    broker = LocalBroker().start()
    return broker.url, broker


class CountingSink(NullSink):
    """A null sink that remembers what it was told to play."""

    def __init__(self) -> None:
        super().__init__()
        self.played: list[tuple[str, float]] = []
        self.volumes: list[int] = []

    def start(self, path: Path, duration: float, volume: int) -> None:
        self.played.append((path.name, time.time()))
        self.volumes.append(volume)
        super().start(path, duration, volume)


def speaker_settings(settings: Settings, broker_url: str, tmp_path: Path, **extra: Any) -> Settings:
    """The test settings with loudspeakers on `broker_url`, under a topic prefix of their own."""
    loudspeaker = {
        "broker": {"url": broker_url, "keepalive": 5},
        "topic_prefix": f"coso-test-{uuid.uuid4().hex[:8]}/v1",
        "client_id": f"coso-test-{uuid.uuid4().hex[:8]}",
        "ack_timeout": "2s",
        "publish_timeout": 3.0,
        "late_after": "3s",
        # Events in a process of their own, as at scale ("auto" keeps them in a thread
        # below 500 players): the tests cover the path large broadcasts take.
        "events_process": True,
        **extra,
    }
    return settings.model_copy(
        update={
            "channels": {**settings.channels, "loudspeaker": loudspeaker},
            "media": settings.media.model_copy(update={"dir": str(tmp_path / "media")}),
            # Known before coso runs: players are given it as their media origin.
            "server": settings.server.model_copy(
                update={"public_url": f"http://127.0.0.1:{free_port()}"}
            ),
            "dispatcher": settings.dispatcher.model_copy(
                update={
                    "retry": settings.dispatcher.retry.model_copy(
                        update={"first_delay": "1s", "max_delay": "2s", "max_attempts": 50}
                    )
                }
            ),
        }
    )


def clip(tmp_path: Path, seconds: float, freq: int = 440, gain: float = -20.0) -> Path:
    path = tmp_path / f"clip-{freq}-{seconds}.wav"
    Sine(freq).to_audio_segment(duration=int(seconds * 1000)).apply_gain(gain).export(
        path, format="wav"
    ).close()
    return path


def plan_text(
    players: list[str],
    start: datetime,
    audio: Path,
    *,
    validity: str = "10m",
    priority: str = "normal",
    number: str = "95/KH-UBND",
    name: str = "Phát thanh CCHC",
) -> str:
    endpoints = "".join(
        f'[[endpoints]]\nchannel = "loudspeaker"\naddress = "{p}"\nunit = "06040"\n\n'
        for p in players
    )
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền cải cách hành chính"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "loa"
kind = "audio"
title = "Bản tin phát thanh"
state = "approved"
audio = "{audio}"

{endpoints}
[[groups]]
name = "loa-{number}"
channel = "loudspeaker"
endpoints = {players!r}

[[schedules]]
name = "{name}"
content = "loa"
channel = "loudspeaker"
targets = {{ groups = ["loa-{number}"] }}
start = {start.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}
validity = "{validity}"
misfire_grace = "1m"
priority = "{priority}"
""".replace("'", '"')


def import_broadcast(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    players: list[str],
    start: datetime,
    audio: Path,
    **kw: Any,
) -> int:
    """Import a one-off broadcast plan with its audio; returns the plan id."""
    number = kw.get("number", "95/KH-UBND")
    text = plan_text(players, start, audio, **kw)
    path = write_plan(tmp_path, text, name=f"plan-{uuid.uuid4().hex[:6]}.toml")
    import_plan_file(engine, settings, path, SystemClock().now())
    return find_plan(engine, number).id


def slot_in(seconds: float) -> datetime:
    """A whole second at least `seconds` from now (plan files have second precision)."""
    return (SystemClock().now() + timedelta(seconds=seconds + 1)).replace(microsecond=0)


@contextmanager
def running_coso(engine: Engine, settings: Settings) -> Iterator[Dispatcher]:
    """The web app (media for players) and the dispatcher, as `coso serve` runs them."""
    with ServerThread(
        create_app(engine, settings), urlsplit(settings.server.public_url).port
    ) as web:
        settings.server.public_url = web.url
        dispatcher = Dispatcher(engine, settings, SystemClock())
        dispatcher.start()
        try:
            # Up as /healthz says it: the broker linked and player events subscribed (an
            # event a test publishes before that would reach no one).
            wait_for(
                lambda: all(
                    part.ok for part in dispatcher.health() if part.name.endswith(".broker")
                ),
                30,
                "the loudspeaker channel's link and subscriptions",
            )
            yield dispatcher
        finally:
            dispatcher.stop()


def players(
    settings: Settings,
    ids: list[str],
    tmp_path: Path,
    *,
    broker_url: str | None = None,
    per_connection: int = 500,
    keep_state: bool = False,
    engine: Engine | None = None,
    sink: type[CountingSink] = CountingSink,
) -> PlayerGroup:
    """Reference players provisioned as `coso players credentials` would: each with its
    token and command key (of its current generation when `engine` is given) and coso's
    media origin (server.public_url, so build them once coso runs)."""
    loudspeaker = settings_of(settings, "loudspeaker")
    url = broker_url or loudspeaker.broker.url
    secret = token_secret(settings.media)

    def gen(pid: str) -> int:
        return generation(engine, pid) if engine is not None else 0

    return PlayerGroup(
        ids,
        parse_broker_url(url),
        loudspeaker.broker.model_copy(update={"url": url}),
        Topics(loudspeaker.topic_prefix),
        data_dir=tmp_path / f"players-{uuid.uuid4().hex[:6]}",
        tokens=lambda pid: player_token(secret, pid, gen(pid)),
        sink=sink,
        keep_state=keep_state,
        per_connection=per_connection,
        keys=lambda pid: (command_key(secret, pid, gen(pid)), gen(pid)),
        media_origin=settings.server.public_url,
    )


def count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return conn.scalar(query) or 0


def log_count(engine: Engine, event: str, distinct: bool = False) -> int:
    column = func.count(func.distinct(ActivityEntry.delivery_id)) if distinct else func.count()
    return count(engine, select(column).where(ActivityEntry.event == event))


def states(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Delivery.endpoint_id, Delivery.state)).all())


def plays(group: PlayerGroup, player_id: str) -> int:
    return len(group.player(player_id).sink.played)  # type: ignore[attr-defined]
