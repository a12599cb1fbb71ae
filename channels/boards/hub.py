"""Pushes each screen its programme. One thread looks at the item table every
`poll_seconds` (new items, items ended by a person), whichever process sent them, and hands
each connected screen whose programme changed the new one; screens connected are marked
online and seen at every heartbeat."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from channels.boards import devices
from channels.boards.programme import programmes, stamp
from channels.boards.tables import BoardItem
from coso.db import write
from coso.loops import call_per_loop
from coso.streak import Streak

log = logging.getLogger(__name__)
I = BoardItem.__table__  # noqa: E741


def event_text(name: str, items: list[dict[str, Any]], now: datetime) -> str:
    """One programme as a server-sent event."""
    data = json.dumps(
        {"board": name, "generated_at": stamp(now), "items": items}, ensure_ascii=False
    )
    return f"event: programme\ndata: {data}\n\n"


# Set by the sender when it kept new items (coso serve runs both in one process): the hub
# looks at once instead of at its next poll. Another process's items are found by the poll.
CHANGED = threading.Event()


class Subscriber:
    def __init__(
        self,
        endpoint_id: int,
        name: str,
        loop: asyncio.AbstractEventLoop,
        token_hash: str | None = None,
    ) -> None:
        self.endpoint_id, self.name = endpoint_id, name
        self.loop = loop
        self.token_hash = token_hash  # the token it connected with: replaced, it is let go
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=8)

    def offer(self, items: str | None) -> None:
        """A programme to send, or None: the stream ends."""
        offer_all([(self, items)])

    def put(self, items: str | None) -> None:
        """On the stream's loop."""
        while self.queue.full():  # only the newest programme matters
            self.queue.get_nowait()
        self.queue.put_nowait(items)


def offer_all(offers: list[tuple[Subscriber, str | None]]) -> None:
    """Hand each stream its programme: one wake-up per event loop for all of them (a slot
    reaches a thousand screens at once)."""
    call_per_loop(((sub.loop, (sub, text)) for sub, text in offers), _put_all)


def _put_all(offers: list[tuple[Subscriber, str | None]]) -> None:
    for sub, text in offers:
        sub.put(text)


class BoardHub:
    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        poll: float,
        heartbeat: float,
        offline_after: timedelta = timedelta(seconds=45),
    ) -> None:
        self.engine, self.now = engine, now
        self.poll, self.heartbeat = poll, heartbeat
        self.offline_after = offline_after
        self.subscribers: dict[int, set[Subscriber]] = defaultdict(set)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.seen_id: int | None = None
        self.seen_ended: datetime | None = None

    def subscribe(
        self,
        endpoint_id: int,
        name: str,
        loop: asyncio.AbstractEventLoop,
        token_hash: str | None = None,
    ) -> Subscriber:
        sub = Subscriber(endpoint_id, name, loop, token_hash)
        with self.lock:
            self.subscribers[endpoint_id].add(sub)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="boards-hub", daemon=True)
                self.thread.start()
        return sub

    def unsubscribe(self, sub: Subscriber) -> bool:
        """Forget a stream; True when it was its board's last one (the board went away)."""
        with self.lock:
            subs = self.subscribers.get(sub.endpoint_id, set())
            subs.discard(sub)
            if not subs:
                self.subscribers.pop(sub.endpoint_id, None)
                return True
        return False

    def connected(self) -> list[int]:
        with self.lock:
            return list(self.subscribers)

    def stop(self) -> None:
        self.stopped.set()

    def _marks(self) -> tuple[int | None, datetime | None]:
        with self.engine.connect() as conn:
            top = conn.scalar(select(func.max(I.c.delivery_id)))
            ended = conn.scalar(select(func.max(I.c.ended_at)).where(I.c.ended_at.is_not(None)))
        return top, ended

    def _run(self) -> None:
        try:
            self.seen_id, self.seen_ended = self._marks()
        except Exception:
            log.exception("boards: cannot read the programme table")
        beat, last = 0.0, time.monotonic()
        streak = Streak()  # the database away: a traceback, then a line now and then
        while not self.stopped.is_set():
            CHANGED.wait(streak.wait(self.poll))
            CHANGED.clear()
            with self.lock:
                if not self.subscribers:  # no screen left: the next one starts it again
                    self.thread = None
                    return
            try:
                self._look()
                now = time.monotonic()
                beat, last = beat + now - last, now
                if beat >= self.heartbeat:
                    beat = 0.0
                    self._seen()
            except Exception as exc:
                if streak.failed():
                    if streak.failures == 1:
                        log.exception("boards: pushing programmes failed; trying again")
                    else:
                        log.error(
                            "boards: pushing programmes failed %d times in a row, the last: %s",
                            streak.failures,
                            str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                        )
            else:
                if failed := streak.ended():
                    log.info("boards: pushing programmes again after %d failure(s)", failed)

    def _look(self) -> None:
        top, ended = self._marks()
        if top == self.seen_id and ended == self.seen_ended:
            return
        changed: set[int] = set()
        with self.engine.connect() as conn:
            if top != self.seen_id:
                query = select(I.c.endpoint_id).distinct()
                if self.seen_id is not None:
                    query = query.where(I.c.delivery_id > self.seen_id)
                changed |= set(conn.scalars(query))
            if ended != self.seen_ended:
                query = select(I.c.endpoint_id).distinct().where(I.c.ended_at.is_not(None))
                if self.seen_ended is not None:
                    query = query.where(I.c.ended_at > self.seen_ended)
                changed |= set(conn.scalars(query))
        self.seen_id, self.seen_ended = top, ended
        self.push(changed)

    def push(self, endpoint_ids: set[int]) -> None:
        """Send these boards' programmes to their connected screens."""
        with self.lock:
            wanted = {e: list(self.subscribers[e]) for e in endpoint_ids if e in self.subscribers}
        if not wanted:
            return
        now = self.now()
        with self.engine.connect() as conn:
            found = programmes(conn, list(wanted), now, emergencies_alone=False)
        offers: list[tuple[Subscriber, str | None]] = []
        for endpoint_id, subs in wanted.items():
            text = event_text(subs[0].name, found[endpoint_id], now)  # made here, off the loop
            offers += [(sub, text) for sub in subs]
        offer_all(offers)

    def _seen(self) -> None:
        """Screens connected are seen now; a screen not seen for offline_after (its stream
        died without a word) is offline."""
        ids, now = self.connected(), self.now()
        D, E = devices.D, devices.E
        screens = select(E.c.id).where(E.c.address.startswith("screen:"))
        with write(self.engine) as conn:
            if ids:
                devices.set_status(conn, ids, online=True, last_seen=now)
                tokens = dict(
                    conn.execute(
                        select(D.c.endpoint_id, D.c.token_hash).where(D.c.endpoint_id.in_(ids))
                    ).all()
                )
                with self.lock:
                    subs = [s for e in ids for s in self.subscribers.get(e, ())]
                # a token replaced since: that screen is let go
                offer_all(
                    [
                        (sub, None)
                        for sub in subs
                        if sub.token_hash is not None
                        and tokens.get(sub.endpoint_id) != sub.token_hash
                    ]
                )
            conn.execute(
                update(D)
                .where(
                    D.c.online.is_(True),
                    D.c.last_seen < now - self.offline_after,
                    D.c.endpoint_id.in_(screens),
                    D.c.endpoint_id.not_in(ids),
                )
                .values(online=False)
            )
