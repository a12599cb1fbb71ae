"""The station's upkeep while coso serves: a `sent` task past the end of its validity
becomes `unconfirmed` (logged by "coso"), codes of closed tasks are freed, and each
operator gets the list of the day by SMS when it is due."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from channels.host import ChannelHost, Part
from channels.registry import settings_of, text_senders
from channels.states import SENT, UNCONFIRMED
from channels.station.channel import CHANNEL
from channels.station.codes import free_closed
from channels.station.digest import RETRY_AFTER, send_digests
from coso.durations import parse_duration

log = logging.getLogger(__name__)
ACTOR = "coso"
UNHEARD = "không người trực nào xác nhận đã phát trước khi hết hiệu lực"


@dataclass
class Round:
    """What one upkeep round did."""

    unconfirmed: int = 0
    codes_freed: int = 0
    digests: dict[str, str] = field(default_factory=dict)


class StationService:
    def __init__(self, host: ChannelHost, _channel: object = None) -> None:
        self.host = host
        cfg = settings_of(host.settings, CHANNEL)
        self.every = parse_duration(cfg.upkeep_every).total_seconds()
        self._send: Callable[[str, str], str] | None = None
        self._looked_for_sender = False
        self._retry_at: dict[str, datetime] = {}  # login → when to try its list again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round_at = time.monotonic()
        self._gen = 0
        self.last_problem = ""

    def sender(self) -> Callable[[str, str], str] | None:
        """How to text an operator: the first channel set up to text one person."""
        if not self._looked_for_sender:
            found = text_senders(self.host)
            self._send = found[0] if found else None
            self._looked_for_sender = True
        return self._send

    def upkeep(self, now: datetime | None = None) -> Round:
        """One round: unconfirmed tasks, freed codes, the lists of the day."""
        now = now or self.host.clock.now()
        done = Round()
        done.unconfirmed = self.host.expire(
            CHANNEL, (SENT,), now, UNHEARD, to=UNCONFIRMED, actor=ACTOR
        )
        done.codes_freed = free_closed(self.host.engine, now)
        skip = frozenset(login for login, at in self._retry_at.items() if at > now)
        done.digests = send_digests(self.host, now, self.sender(), skip, self._beat)
        for login, result in done.digests.items():
            if result.startswith("not sent"):
                self._retry_at[login] = now + RETRY_AFTER
            else:
                self._retry_at.pop(login, None)
        return done

    # --- a thread, for `coso serve` -----------------------------------------------------

    def _beat(self) -> None:
        self._round_at = time.monotonic()

    def start(self) -> None:
        self._stop.clear()
        self._gen += 1
        generation = self._gen
        self._round_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._loop, args=(generation,), name="station-upkeep", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def restart(self, part: str) -> None:
        if part == "upkeep" and not self._stop.is_set():
            self.start()

    def _loop(self, generation: int) -> None:
        wait = 0.0  # the first round at once: tasks overdue while coso was down
        while not self._stop.wait(wait) and generation == self._gen:
            try:
                self.upkeep()
                self.last_problem = ""
            except Exception as exc:
                self.last_problem = f"{type(exc).__name__}: {exc}"[:200]
                log.exception("station upkeep failed; retrying")
            self._round_at = time.monotonic()
            wait = self.every

    def health(self) -> list[Part]:
        now = time.monotonic()
        alive = self._thread is not None and self._thread.is_alive()
        late = now - self._round_at
        ok = alive and late < max(60.0, 3 * self.every)
        if not alive:
            detail = "upkeep ended"
        elif not ok:
            detail = f"upkeep stuck: no round for {late:.0f}s"
        else:
            detail = "upkeep running"
            if self.last_problem:
                detail += f"; last round failed: {self.last_problem}"
            if self.sender() is None:
                detail += "; no channel can text operators (SMS): no list of the day by SMS"
        seen = datetime.now(UTC) - timedelta(seconds=max(0.0, late))
        return [Part("upkeep", ok, detail, seen)]
