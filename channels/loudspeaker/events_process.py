"""Player events applied in a process of their own: its own MQTT connection (subscribed to
every player's events and status) and its own database connection, so decoding and
applying events uses a second CPU instead of sharing the dispatcher's (Python runs one
thread at a time per process). Players that come online are passed back to the dispatcher,
which sends them their programme and what they missed."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import time
from typing import Any

from channels.host import ChannelHost
from channels.loudspeaker.settings import LoudspeakerSettings
from coso.config import Settings
from coso.db import shared_between_processes

log = logging.getLogger(__name__)
AUTO_FROM = 500  # loudspeaker endpoints from which "auto" applies events in a process
READY_TIMEOUT = 60.0  # seconds for the process to start (not for the broker: it may be away)
STOP_POLL = 0.1  # seconds between looks at whether SIGTERM came


def wanted(settings: Settings, cfg: LoudspeakerSettings, players: int) -> bool:
    """A process of its own: when asked for, or ("auto") for AUTO_FROM players or more; never
    when the database lives only in this process."""
    if not shared_between_processes(settings.database.url):
        return False
    if cfg.events_process == "auto":
        return players >= AUTO_FROM
    return cfg.events_process


class EventsProcess:
    def __init__(self, host: ChannelHost, cfg: LoudspeakerSettings) -> None:
        """The child builds a host of the same class as `host` (the engine's), over its own
        database connection."""
        settings = host.settings
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._online: Any = context.Queue()
        # A pipe, not an Event: a process killed while waiting on a multiprocessing Event
        # leaves it so that setting it blocks forever.
        self._ready, ready = context.Pipe(duplex=False)
        # Written by the child without a lock (a killed child cannot leave one held): when
        # it last found its loops running (time.monotonic, one clock for every process on
        # Linux), and whether the broker confirmed its subscription.
        self._status: Any = context.RawArray("d", [time.monotonic(), 0.0])
        self._process = context.Process(
            target=_main,
            args=(
                type(host),
                settings,
                cfg,
                self._online,
                ready,
                logging.getLogger().level,
                self._status,
            ),
            name="coso-player-events",
            daemon=True,
        )
        self._ready_end = ready

    def start(self) -> EventsProcess:
        """Start it and wait until it runs; it subscribes when the broker answers (its
        session is persistent: the broker keeps events for it while it restarts)."""
        self._status[0] = time.monotonic()
        self._process.start()
        self._ready_end.close()  # the child holds it now: a child that dies reads as EOF
        try:
            ready = self._ready.poll(READY_TIMEOUT) and self._ready.recv()
        except EOFError:
            ready = False
        if not ready:  # dead or stuck: health says so, and the supervisor starts another
            log.error("the player events process did not start within %.0fs", READY_TIMEOUT)
        return self

    @property
    def beat(self) -> float:
        """When it last found its loops running (time.monotonic)."""
        return float(self._status[0])

    @property
    def subscribed(self) -> bool:
        """The broker confirmed its subscription to players' events."""
        return self._status[1] > 0

    def came_online(self) -> set[str]:
        """Players that said `online` since the last call."""
        players: set[str] = set()
        while True:
            try:
                players.add(self._online.get_nowait())
            except queue.Empty:
                return players

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self) -> None:
        """SIGTERM: it finishes the batch it is applying and disconnects."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._ready.close()


def _main(
    host_type: Any,
    settings: Settings,
    cfg: LoudspeakerSettings,
    online: Any,
    ready: Any,
    level: int,
    status: Any,
) -> None:
    """The process: apply events until SIGTERM (sent by the dispatcher, or by the kernel
    when the dispatcher dies)."""
    from channels.loudspeaker.channel import LoudspeakerChannel
    from channels.loudspeaker.mqtt import die_with_parent
    from channels.loudspeaker.players import PlayerService
    from coso.clock import SystemClock
    from coso.db import make_engine
    from coso.memory import settle_after_startup

    # A flag, not a threading.Event: the handler runs in this thread, maybe while it is
    # inside Event.wait, and a second SIGTERM (the dispatcher's, then the kernel's when the
    # dispatcher ends) would wait forever for the lock the first one holds.
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the dispatcher stops it in order
    die_with_parent()
    logging.basicConfig(
        level=level or logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s [events]: %(message)s",
    )
    clock = SystemClock()
    channel = LoudspeakerChannel(
        cfg,
        cfg.broker.url,
        settings.server.public_url,
        clock.now,
        role="events",
        instance=settings.dispatcher.name,
    )
    engine = make_engine(settings.database.url)
    host = host_type(engine, settings, clock)
    service = PlayerService(host, channel, came_online=online.put)
    try:
        service.start_ingest()
        ready.send(True)
        ready.close()
        settle_after_startup()
        while not stopping:
            time.sleep(STOP_POLL)
            if all(part.ok for part in service.health() if part.name != "broker"):
                status[0] = time.monotonic()
            status[1] = 1.0 if channel.subscribed else 0.0
            if not (channel.loop.alive and service.alive):
                # The supervisor starts the process again when it ends (and the broker
                # keeps the events of its session meanwhile); alive but deaf, it would not.
                log.error(
                    "player events: the %s stopped; ending the process to be started again",
                    "network loop" if not channel.loop.alive else "ingest thread",
                )
                return
    finally:
        service.stop()
        channel.close()
        engine.dispose()
