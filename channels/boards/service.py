"""Upkeep of Huidu controllers while coso serves: every `check_every`, each controller is
asked what it plays. Programs of coso it has become `displayed`; a controller whose
programme is not the board's (an emergency began or ended, an item expired, someone changed
it by hand) gets the board's programme again; its brightness schedule is set when it
differs from the settings; one that does not answer is shown offline."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from channels.base import Outcome, TransientSendError
from channels.boards import devices
from channels.boards.addresses import parse
from channels.boards.huidu import PREFIX, ControllerError
from channels.boards.programme import programmes
from channels.host import Part
from coso.db import write
from coso.durations import parse_duration

log = logging.getLogger(__name__)


class BoardService:
    def __init__(self, host: Any, channel: Any) -> None:
        self.host, self.channel = host, channel
        self.cfg = channel.cfg
        self.every = parse_duration(self.cfg.huidu.check_every).total_seconds()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_round: datetime | None = None

    def start(self) -> None:
        self.stopped.clear()
        self.thread = threading.Thread(target=self._run, name="boards-controllers", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def health(self) -> list[Part]:
        alive = self.thread is not None and self.thread.is_alive()
        return [Part("controllers", alive, "checking Huidu controllers", self.last_round)]

    def restart(self, part: str) -> None:
        self.start()

    def _run(self) -> None:
        while not self.stopped.wait(0 if self.last_round is None else self.every):
            try:
                # With several dispatchers, the one that runs the timer asks the controllers.
                if self.host.leads():
                    self.check_all()
            except Exception:
                log.exception("boards: checking controllers failed")
            self.last_round = self.host.clock.now()

    def check_all(self) -> int:
        """One round over every Huidu board; how many answered."""
        answered = 0
        for row in devices.boards(self.host.engine, "huidu"):
            if self.stopped.is_set():
                break
            answered += self.check(row)
        return answered

    def brightness_periods(self) -> list[tuple[str, str, int]]:
        return [(b.start, b.end, b.percent) for b in self.cfg.huidu.brightness]

    def check(self, row: Any) -> int:
        board = parse(row.address)
        now = self.host.clock.now()
        client = self.channel.huidu
        try:
            periods = self.brightness_periods()
            wanted_light = devices.light_schedule(periods, self.cfg.zone)
            if row.brightness_signature != wanted_light:
                client.brightness(board, periods)
                with write(self.host.engine) as conn:
                    devices.set_status(conn, [row.id], brightness_signature=wanted_light)
            has = client.programs(board)
            with self.host.engine.connect() as conn:
                items = programmes(conn, [row.id], now)[row.id]
            wanted = sorted(f"{PREFIX}{i['id']}" for i in items)
            note = None
            if sorted(has) != wanted:
                if any(not h.startswith(PREFIX) for h in has):
                    note = "bảng đang hiện nội dung không phải của coso: đã gửi lại chương trình"
                self.channel.show_on_controller(board, row.id, None)
                has = client.programs(board)
        except (ControllerError, TransientSendError) as exc:
            reason = exc.message if isinstance(exc, ControllerError) else exc.reason
            with write(self.host.engine) as conn:
                devices.failed(conn, row.id, reason, now)
            return 0
        except Exception as exc:  # a send's PermanentSendError: its reason is kept
            with write(self.host.engine) as conn:
                devices.failed(conn, row.id, str(exc), now)
            return 0
        shown = {
            int(h[len(PREFIX) :])
            for h in has
            if h.startswith(PREFIX) and h[len(PREFIX) :].isdigit()
        }
        outcomes = [
            Outcome(
                d,
                "displayed",
                "displayed",
                now,
                f"board:{row.address}",
                detail="có trong chương trình bộ điều khiển đang chạy",
                endpoint_id=row.id,
                inbound=True,
            )
            for d in sorted(shown)
        ]
        with write(self.host.engine) as conn:
            titles = {i["id"]: i["title"] for i in items}
            status: dict[str, Any] = {"online": True, "last_seen": now}
            status["last_failure"] = note
            status["last_failure_at"] = now if note else None
            status["showing"] = next((titles[d] for d in sorted(shown) if d in titles), None)
            devices.set_status(conn, [row.id], **status)
            if outcomes:
                self.host.receive_in(conn, outcomes)
        return 1
