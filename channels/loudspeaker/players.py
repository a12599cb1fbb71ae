"""The dispatcher's side of the loudspeaker channel: apply what players report (events,
as-run uploads, online/offline), keep their programmes in sync, send again what no player
acknowledged, and expire commands that reached nobody in time."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.base import Outcome
from channels.endpoints import Endpoint
from channels.host import ChannelHost, Part, Rejected
from channels.loudspeaker import protocol as p
from channels.loudspeaker.channel import Inbound, LoudspeakerChannel, event_outcomes
from channels.loudspeaker.devices import online_players, update_players
from channels.loudspeaker.events_process import EventsProcess
from channels.loudspeaker.programme import programmes
from channels.states import DELIVERED, SENT
from coso.db import write
from coso.durations import parse_duration

log = logging.getLogger(__name__)
E = Endpoint.__table__
CHANNEL = "loudspeaker"
INGEST_BATCH = 1000  # player messages applied in one write transaction, at most
INGEST_LINGER = 0.05  # seconds a batch waits for more messages after its first
SYNC_CHECK = timedelta(seconds=5)  # how often programmes are compared for changes
LOOP_LATE = 60.0  # seconds without a finished round after which a loop counts as stuck


class PlayerService:
    def __init__(
        self,
        host: ChannelHost,
        channel: LoudspeakerChannel,
        came_online: Callable[[str], None] | None = None,
    ) -> None:
        """`came_online`: told of each player that says `online` (in the events process:
        passes it to the dispatcher's); by default kept here for the next upkeep."""
        self.host, self.channel = host, channel
        cfg = channel.settings
        self.engine, self.clock = host.engine, host.clock
        self._report_online = came_online
        self._events: EventsProcess | None = None
        self.ack_timeout = parse_duration(cfg.ack_timeout)
        self.sync_every = parse_duration(cfg.sync_every)
        self.sync_horizon = parse_duration(cfg.sync_horizon)
        self._endpoints: dict[str, int] = {}
        # player → slot → (digest of the entry, its not_before) as last sent
        self._synced: dict[str, dict[str, tuple[str, str]]] = {}
        self._last_full_sync: datetime | None = None
        self._last_checked: datetime | None = None
        self._redelivered: dict[int, datetime] = {}
        self._status_rows: set[int] = set()  # players with a player_status row
        self._came_online: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ingest: threading.Thread | None = None
        self._upkeep: threading.Thread | None = None
        self._upkeep_round = time.monotonic()  # when the upkeep loop last finished a round
        self._upkeep_gen = 0  # a replaced (stuck) upkeep loop ends when it wakes
        self._link_seen: float | None = None  # when the broker link was last seen up

    # --- inbound ------------------------------------------------------------------------

    def ingest(self, items: Sequence[Inbound]) -> int:
        """Apply a batch of player messages; returns how many outcomes were applied."""
        now = self.clock.now()
        endpoints = self._endpoint_ids({i.player for i in items})
        device: dict[int, dict[str, Any]] = {}
        reports: list[tuple[str, int, list[p.PlayerEvent]]] = []
        for item in items:
            eid = endpoints.get(item.player)
            if eid is None:
                log.warning(
                    "message from %s, which is no loudspeaker endpoint: ignored", item.player
                )
                continue
            change = device.setdefault(eid, {})
            change["last_seen"] = item.received_at
            if item.kind == "status":
                self._status(item, change)
                continue
            try:
                events = p.read_events(item.payload)
            except p.ProtocolError as exc:
                change.update(
                    last_failure=f"rejected a malformed event: {exc}", last_failure_at=now
                )
                log.warning("player %s: rejected a malformed event: %s", item.player, exc)
                continue
            for ev in events:
                _track_playing(ev, change)
            reports.append((item.player, eid, events))
        outcomes: list[Outcome] = []
        for player, eid, events in reports:
            outcomes += event_outcomes(eid, player, events, self.channel.late_after)
        with write(self.engine) as conn:  # everything read and built before the write lock
            received = self.host.receive_in(conn, outcomes)
            _note_rejected(received.rejected, device, now)
            update_players(conn, device, self._status_rows)
        return len(received.applied)

    def _status(self, item: Inbound, change: dict[str, Any]) -> None:
        state = item.payload.get("state")
        if state not in (p.ONLINE, p.OFFLINE):
            return
        change["online"] = state == p.ONLINE
        try:
            change["status_at"] = p.parse_time(item.payload.get("at"), "at") or item.received_at
        except p.ProtocolError:
            change["status_at"] = item.received_at
        if state == p.ONLINE:
            if self._report_online is not None:
                self._report_online(item.player)
            else:
                with self._lock:
                    self._came_online.add(item.player)
        else:
            change["playing"] = None

    def _endpoint_ids(self, players: set[str]) -> dict[str, int]:
        missing = {a for a in players if a not in self._endpoints}
        if missing:
            with self.engine.connect() as conn:
                for eid, address in conn.execute(
                    select(E.c.id, E.c.address).where(
                        E.c.channel == CHANNEL, E.c.address.in_(missing)
                    )
                ):
                    self._endpoints[address] = eid
        return {a: self._endpoints[a] for a in players if a in self._endpoints}

    # --- upkeep -------------------------------------------------------------------------

    def upkeep(self) -> None:
        """Expire what reached no player in time, send again what was not acknowledged, and
        re-send programmes that changed (or to players that just came online)."""
        now = self.clock.now()
        self.host.expire(CHANNEL, (SENT,), now, "no player acknowledged it before its expiry")
        elsewhere: set[str] = set()
        if self._events is not None:
            elsewhere = self._events.came_online()
        with self._lock:
            fresh, self._came_online = self._came_online | elsewhere, set()
        self.redeliver(now, fresh)
        everyone = self._last_full_sync is None or now - self._last_full_sync >= self.sync_every
        checked = self._last_checked
        if fresh or everyone or checked is None or now - checked >= SYNC_CHECK:
            self._last_checked = now
            if everyone:
                self._last_full_sync = now
            self.sync(now, force=fresh, everyone_forced=everyone)

    def redeliver(self, now: datetime, players: set[str]) -> int:
        """Commands sent or received but not finished, to online players: to `players` at once,
        to the others after ack_timeout without news."""
        stale = now - self.ack_timeout
        fresh_ids = [self._endpoints[a] for a in self._endpoint_ids(players)]
        rows = self.host.deliveries(
            CHANNEL,
            (SENT, DELIVERED),
            endpoint_ids=online_players(),
            unexpired_at=now,
            updated_before=stale,
            or_endpoint_ids=fresh_ids,
        )
        due = [
            r
            for r in rows
            if r.endpoint_id in fresh_ids or self._redelivered.get(r.id, r.updated_at) <= stale
        ]
        if not due:
            return 0
        messages = [m for m in self.host.messages(due) if not isinstance(m, tuple)]
        sent = self.channel.republish(messages)  # type: ignore[arg-type]
        for r in due[:sent]:
            self._redelivered[r.id] = now
        if len(self._redelivered) > 100_000:
            self._redelivered = {k: v for k, v in self._redelivered.items() if v > stale}
        log.info("sent %d unacknowledged command(s) again", sent)
        return sent

    def sync(self, now: datetime, force: set[str], everyone_forced: bool) -> int:
        """Send each player its programme when it changed (a slot added or changed, or a
        future slot withdrawn; not merely a slot passing, which players drop themselves),
        or when forced."""
        progs = programmes(self.host, now, self.sync_horizon)
        for player in self._synced.keys() - progs.keys():
            progs[player] = []  # everything withdrawn, or passed
        sent = 0
        now_text = p.stamp(now) or ""
        digests: dict[int, str] = {}  # a slot's entry is one object shared by its players

        def digest(entry: dict[str, Any]) -> str:
            if id(entry) not in digests:
                digests[id(entry)] = _digest(entry)
            return digests[id(entry)]

        # Players of the same slots share their entry objects, so each distinct programme is
        # summarised, and compared with what was sent before, once.
        summaries: dict[tuple[int, ...], dict[str, tuple[str, str]]] = {}
        verdicts: dict[tuple[int, tuple[int, ...]], bool] = {}
        for player, entries in progs.items():
            key = tuple(id(e) for e in entries)
            current = summaries.get(key)
            if current is None:
                current = {e["slot"]: (digest(e), e["not_before"]) for e in entries}
                summaries[key] = current
            before = self._synced.get(player)
            forced = everyone_forced or player in force
            if not forced and before is not None:
                verdict = verdicts.get((id(before), key))
                if verdict is None:
                    verdict = _changed(before, current, now_text)
                    verdicts[(id(before), key)] = verdict
                if not verdict:
                    continue
            if not forced and before is None and not entries:
                continue
            for e in entries:
                e["media"] = self.channel.media_ref(e["media"]["sha256"], e["media"]["duration"])
            if self.channel.publish_sync(player, entries):
                self._synced[player] = current
                sent += 1
        return sent

    # --- threads ------------------------------------------------------------------------

    def start(self) -> None:
        """Upkeep in a thread; events in a process of their own when the channel leaves them
        to one (role "commands"), else in a thread too. Neither waits for the broker."""
        if self.channel.role == "commands":
            self._events = EventsProcess(self.host, self.channel.settings).start()
        else:
            self.start_ingest()
        self._start_upkeep()

    @property
    def events_process(self) -> EventsProcess | None:
        """The process applying player events, when they are applied in one."""
        return self._events

    def start_ingest(self) -> None:
        self._ingest = self._spawn("player-events", self._ingest_loop)

    def _start_upkeep(self) -> None:
        self._upkeep_round = time.monotonic()
        self._upkeep_gen += 1
        generation = self._upkeep_gen
        self._upkeep = self._spawn("player-upkeep", lambda: self._upkeep_loop(generation))

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        if self._events is not None:
            self._events.stop()

    # --- health -------------------------------------------------------------------------

    def health(self) -> list[Part]:
        """The broker link, the MQTT network loop, the events (process or thread) and the
        upkeep loop."""
        now = time.monotonic()
        parts = [self._broker_part(now)]
        loop = self.channel.loop
        parts.append(
            Part(
                "network",
                loop.alive,
                "MQTT network loop running" if loop.alive else "MQTT network loop stopped",
                _wall(loop.round_at, now),
            )
        )
        if self._events is not None:
            parts.append(self._events_part(now))
        elif self._ingest is not None:
            alive = self._ingest.is_alive()
            parts.append(
                Part(
                    "events",
                    alive,
                    "events applied in a thread" if alive else "events thread ended",
                    _wall(now, now) if alive else None,
                )
            )
        if self._upkeep is not None:
            late = now - self._upkeep_round
            ok = self._upkeep.is_alive() and late < LOOP_LATE
            detail = "running" if ok else ("ended" if not self._upkeep.is_alive() else "stuck")
            parts.append(Part("upkeep", ok, f"upkeep {detail}", _wall(self._upkeep_round, now)))
        return parts

    def _broker_part(self, now: float) -> Part:
        url = self.channel.address.url
        connected = self.channel.connected
        if self._events is not None:
            subscribed = self._events.subscribed
        else:
            subscribed = self.channel.subscribed or self.channel.role == "commands"
        ok = connected and subscribed
        if ok:
            self._link_seen = now
            version = "5" if self.channel.mqtt5 else "3.1.1"
            detail = f"connected to {url} (MQTT {version})"
        elif not connected:
            detail = f"no link to {url}: retrying; loudspeaker deliveries wait"
        else:
            detail = f"connected to {url}; player events not subscribed yet"
        last = _wall(self._link_seen, now) if self._link_seen is not None else None
        return Part("broker", ok, detail, last, restartable=False, needed_to_send=True)

    def _events_part(self, now: float) -> Part:
        assert self._events is not None
        beat = self._events.beat
        late = now - beat
        if not self._events.alive:
            detail, ok = f"events process {self._events.pid} ended", False
        elif late >= LOOP_LATE:
            detail, ok = f"events process {self._events.pid} stuck for {late:.0f}s", False
        else:
            detail, ok = f"events process {self._events.pid} running", True
        return Part("events", ok, detail, _wall(beat, now))

    def restart(self, part: str) -> None:
        """Start again the events process or thread, the upkeep loop or the network loop."""
        if self._stop.is_set():
            return
        if part == "events":
            if self._events is not None:
                old = self._events
                old.stop()
                self._events = EventsProcess(self.host, self.channel.settings).start()
            else:
                self._forget(self._ingest)
                self.start_ingest()
        elif part == "upkeep":
            self._forget(self._upkeep)
            self._start_upkeep()
        elif part == "network":
            self.channel.restart_network()

    def _forget(self, thread: threading.Thread | None) -> None:
        if thread in self._threads:
            self._threads.remove(thread)

    def _ingest_loop(self) -> None:
        while not self._stop.is_set():
            items = self.channel.take_inbound(INGEST_BATCH, 0.2, INGEST_LINGER)
            if not items:
                continue
            try:
                self.ingest(items)
            except Exception:
                log.exception("applying %d player message(s) failed; retrying", len(items))
                self._status_rows.clear()  # rows created in the failed transaction are not
                for item in items:
                    self.channel.inbound.put(item)
                self._stop.wait(1)

    def _upkeep_loop(self, generation: int) -> None:
        while not self._stop.wait(1.0) and generation == self._upkeep_gen:
            try:
                self.upkeep()
            except Exception:
                log.exception("loudspeaker upkeep failed; retrying")
            self._upkeep_round = time.monotonic()


def _wall(monotonic: float, now: float) -> datetime:
    """The wall-clock time of a monotonic reading taken `now - monotonic` seconds ago."""
    return datetime.now(UTC) - timedelta(seconds=max(0.0, now - monotonic))


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def _changed(
    before: dict[str, tuple[str, str]], current: dict[str, tuple[str, str]], now: str
) -> bool:
    """A slot new or different, or one still to come withdrawn."""
    if any(before.get(slot, ("", ""))[0] != digest for slot, (digest, _) in current.items()):
        return True
    return any(not_before > now for slot, (_, not_before) in before.items() if slot not in current)


def _note_rejected(
    rejected: Sequence[Rejected], device: dict[int, dict[str, Any]], now: datetime
) -> None:
    """A false report stays on the device that sent it (the engine logged it)."""
    for r in rejected:
        if r.outcome.endpoint_id is not None:
            device.setdefault(r.outcome.endpoint_id, {}).update(
                last_failure=r.reason, last_failure_at=now
            )


def _track_playing(ev: p.PlayerEvent, change: dict[str, Any]) -> None:
    """Events arrive in order: the last start or end in a batch says what plays now."""
    label = f"delivery {ev.delivery_id}" if ev.delivery_id else f"slot {ev.slot}"
    if ev.kind == p.STARTED and not ev.as_run:
        change.update(playing=label, playing_since=ev.at)
    elif ev.kind in (p.FINISHED, p.FAILED) and not ev.as_run:
        change["playing"] = None
    if ev.kind == p.FAILED:
        change.update(last_failure=f"{label}: {ev.reason}", last_failure_at=ev.at)
