"""Player events applied in a process of their own: its own MQTT connection (subscribed to
every player's events and status) and its own database connection, so decoding and
applying events uses a second CPU instead of sharing the dispatcher's (Python runs one
thread at a time per process). Players that come online are passed back to the dispatcher,
which sends them their programme and what they missed."""

from __future__ import annotations

import json
import logging
import mmap
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from channels.host import ChannelHost
from channels.loudspeaker.settings import LoudspeakerSettings
from coso.config import Settings
from coso.db import shared_between_processes

log = logging.getLogger(__name__)
AUTO_FROM = 500  # loudspeaker endpoints from which "auto" applies events in a process
# CPUs from which "auto" applies events in a process. On two, the events process and the
# dispatcher's process measured the same over a slot of 10,000 players (the players' own
# traffic takes the second CPU), and the second process cost 66 MB (docs/benchmarks.md).
AUTO_CPUS = 4
READY_TIMEOUT = 60.0  # seconds for the process to start (not for the broker: it may be away)
STOP_POLL = 0.1  # seconds between looks at whether SIGTERM came
READY = b"ready\n"
# What the child writes without a lock (a killed child cannot leave one held), in memory both
# processes map: when it last found its loops running (time.monotonic, one clock for every
# process on Linux), and whether the broker confirmed its subscription.
STATUS = struct.Struct("dd")
CHILD = "from channels.loudspeaker.events_process import run_child; run_child()"


def wanted(
    settings: Settings, cfg: LoudspeakerSettings, players: int, cpus: int | None = None
) -> bool:
    """A process of its own: when asked for, or ("auto") for AUTO_FROM players or more on a
    machine of AUTO_CPUS CPUs or more (`cpus`: those this process may run on); never when
    the database lives only in this process."""
    if not shared_between_processes(settings.database.url):
        return False
    if cfg.events_process == "auto":
        cpus = usable_cpus() if cpus is None else cpus
        return players >= AUTO_FROM and cpus >= AUTO_CPUS
    return cfg.events_process


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's share where it is set
    so), or the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class EventsProcess:
    def __init__(self, host: ChannelHost, cfg: LoudspeakerSettings) -> None:
        """The child builds a host of the same class as `host` (the engine's), over its own
        database connection. It is a new interpreter running this module, not a
        multiprocessing child: that would start a resource-tracker process beside it and run
        the `coso` command's own module again in it, for memory and nothing else."""
        self._args = pickle.dumps(
            (type(host), host.settings, cfg, logging.getLogger().level),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        # Open, and mapped, as long as this object: health may read a stopped process's beat.
        self._status_file = tempfile.TemporaryFile()  # noqa: SIM115
        os.ftruncate(self._status_file.fileno(), STATUS.size)
        self._status = mmap.mmap(self._status_file.fileno(), STATUS.size)
        self._news: Any = None  # the child's news (see start)
        self._unread = b""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EventsProcess:
        """Start it and wait until it runs; it subscribes when the broker answers (its
        session is persistent: the broker keeps events for it while it restarts)."""
        STATUS.pack_into(self._status, 0, time.monotonic(), 0.0)
        # The child's news: READY once it runs, then the players that said `online`, one a
        # line. A pipe, not an Event or a lock: a killed child leaves neither held.
        news, news_end = os.pipe()
        os.set_blocking(news, False)
        self._news = os.fdopen(news, "rb", buffering=0)
        status_fd = self._status_file.fileno()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(status_fd), str(news_end)],
                stdin=subprocess.PIPE,
                pass_fds=(status_fd, news_end),
            )
        finally:
            os.close(news_end)  # the child holds it now: a child that dies reads as EOF
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(self._args)
            self._process.stdin.close()
        except OSError:
            pass  # it died at once: health says so
        if not self._wait_ready(READY_TIMEOUT):  # dead or stuck: health says so, and the
            log.error(  # supervisor starts another
                "the player events process did not start within %.0fs", READY_TIMEOUT
            )
        return self

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while READY not in self._unread:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._news], [], [], left)[0]:
                return False
            chunk = self._news.read(65536)
            if chunk == b"":  # it ended
                return False
            self._unread += chunk or b""
        self._unread = self._unread.replace(READY, b"", 1)
        return True

    @property
    def beat(self) -> float:
        """When it last found its loops running (time.monotonic)."""
        return float(STATUS.unpack_from(self._status)[0])

    @property
    def subscribed(self) -> bool:
        """The broker confirmed its subscription to players' events."""
        return STATUS.unpack_from(self._status)[1] > 0

    def came_online(self) -> set[str]:
        """Players that said `online` since the last call."""
        try:
            while chunk := self._news.read(65536):  # None: nothing more now; b"": it ended
                self._unread += chunk
        except (ValueError, AttributeError):  # stopped (closed), or never started
            return set()
        lines = self._unread.split(b"\n")
        self._unread = lines.pop()
        return {json.loads(line) for line in lines if line and line != READY.strip()}

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """SIGTERM: it finishes the batch it is applying and disconnects."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._news is not None:
            self._news.close()


class _News:
    """The child's side of the pipe, written in order by a thread of its own, so that the
    ingest never waits on a full pipe for the dispatcher to read it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._waiting: list[bytes] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._write, name="player-news", daemon=True).start()

    def ready(self) -> None:
        self._put(READY)

    def online(self, player: str) -> None:
        self._put(json.dumps(player).encode() + b"\n")

    def _put(self, line: bytes) -> None:
        with self._cond:
            self._waiting.append(line)
            self._cond.notify()

    def _write(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                lines, self._waiting = self._waiting, []
            data = b"".join(lines)
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError:
                return  # the dispatcher is gone; this process ends with it


def run_child() -> None:
    """The process (`python -c CHILD STATUS_FD NEWS_FD`, its arguments pickled on stdin):
    apply events until SIGTERM (sent by the dispatcher, or by the kernel when the
    dispatcher dies)."""
    from channels.loudspeaker.mqtt import die_with_parent
    from coso.memory import tune_allocator

    tune_allocator()
    # A flag, not a threading.Event: the handler runs in this thread, maybe while it is
    # inside Event.wait, and a second SIGTERM (the dispatcher's, then the kernel's when the
    # dispatcher ends) would wait forever for the lock the first one holds.
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the dispatcher stops it in order
    die_with_parent()
    status = mmap.mmap(int(sys.argv[1]), STATUS.size)
    news = _News(int(sys.argv[2]))
    host_type, settings, cfg, level = pickle.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    logging.basicConfig(
        level=level or logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s [events]: %(message)s",
    )
    _apply_events(host_type, settings, cfg, status, news, stopping)


def _apply_events(
    host_type: Any,
    settings: Settings,
    cfg: LoudspeakerSettings,
    status: mmap.mmap,
    news: _News,
    stopping: list[bool],
) -> None:
    from channels.loudspeaker.channel import LoudspeakerChannel
    from channels.loudspeaker.players import PlayerService
    from coso.clock import SystemClock
    from coso.db import make_engine
    from coso.memory import settle_after_startup

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
    service = PlayerService(host, channel, came_online=news.online)
    try:
        service.start_ingest()
        news.ready()
        settle_after_startup()
        while not stopping:
            time.sleep(STOP_POLL)
            beat = STATUS.unpack_from(status)[0]
            if all(part.ok for part in service.health() if part.name != "broker"):
                beat = time.monotonic()
            STATUS.pack_into(status, 0, beat, 1.0 if channel.subscribed else 0.0)
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
