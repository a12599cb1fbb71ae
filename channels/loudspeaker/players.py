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

from sqlalchemy import select, text

from channels.base import Outcome
from channels.endpoints import Endpoint
from channels.host import ChannelHost, Part, Rejected
from channels.loudspeaker import protocol as p
from channels.loudspeaker.channel import Inbound, LoudspeakerChannel, event_outcomes
from channels.loudspeaker.devices import online_players, update_players
from channels.loudspeaker.events_process import EventsProcess
from channels.loudspeaker.programme import (
    ADDRESSES_BY_ID,
    Programme,
    addresses,
    player_ids,
    programmes_by_endpoint,
)
from channels.states import DELIVERED, EXPIRED, SENT
from coso.clock import as_utc
from coso.db import chunks, write
from coso.durations import parse_duration
from coso.memory import give_back_after

log = logging.getLogger(__name__)
E = Endpoint.__table__
CHANNEL = "loudspeaker"
INGEST_BATCH = 1000  # player messages applied in one write transaction, at most
INGEST_LINGER = 0.05  # seconds a batch waits for more messages after its first
SYNC_CHECK = timedelta(seconds=5)  # how often programmes are compared for changes
LOOP_LATE = 60.0  # seconds without a finished round after which a loop counts as stuck
# The programme of every player without a slot.
NOTHING: Programme = ()


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
        self.clock_skew = parse_duration(cfg.clock_skew)
        self._endpoints: dict[str, int] = {}
        # player's endpoint id → slot → (digest of the entry, its not_before) as last sent
        self._synced: dict[int, dict[str, tuple[str, str]]] = {}
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
        """Apply a batch of player messages; returns how many outcomes were applied. A
        message, or a record of one, that breaks the protocol is refused alone: logged, and
        kept as its player's last failure."""
        now = self.clock.now()
        endpoints = self._endpoint_ids({i.player for i in items})
        device: dict[int, dict[str, Any]] = {}
        reports: list[tuple[Inbound, int, list[p.PlayerEvent]]] = []
        for item in items:
            eid = endpoints.get(item.player)
            if eid is None:
                log.warning(
                    "message from %s, which is no loudspeaker endpoint: ignored", item.player
                )
                continue
            change = device.setdefault(eid, {})
            change["last_seen"] = item.received_at
            events: list[p.PlayerEvent] = []
            errors: list[Exception] = []
            try:
                if item.kind == "status":
                    self._status(item, change)
                    continue
                events, refused = p.read_events(item.payload)
                errors += refused
            except Exception as exc:  # nothing a player sends may stop the others
                errors.append(exc)
            for exc in errors:
                _refuse(item.player, exc, change, now)
            reports.append((item, eid, events))
        not_before = self._not_before(reports)
        outcomes: list[Outcome] = []
        for item, eid, events in reports:
            kept = []
            for ev in events:
                try:
                    ev = self._on_clock(item.player, ev, not_before, item.received_at)
                except p.ProtocolError as exc:
                    _refuse(item.player, exc, device[eid], now)
                    continue
                _track_playing(ev, device[eid])
                kept.append(ev)
            outcomes += event_outcomes(eid, item.player, kept, self.channel.late_after)
        with write(self.engine) as conn:  # everything read and built before the write lock
            received = self.host.receive_in(conn, outcomes)
            _note_rejected(received.rejected, device, now)
            update_players(conn, device, self._status_rows)
        return len(received.applied)

    def apply(self, items: Sequence[Inbound]) -> list[Inbound]:
        """Ingest a batch; when that fails, each message on its own, so that one the database
        refuses is refused alone (logged, never tried again) and the others are applied.
        Returns the messages to try again later: those not applied while the database did
        not answer."""
        try:
            self.ingest(items)
            return []
        except Exception as exc:
            self._status_rows.clear()  # rows created in the failed transaction are not
            if not self._database_answers():
                log.warning("applying %d player message(s) failed: %s", len(items), exc)
                return list(items)
            log.exception("applying %d player message(s) failed; one at a time", len(items))
        for n, item in enumerate(items):
            for attempt in (1, 2):  # twice: a deadlock or a lost connection is not the item
                try:
                    self.ingest([item])
                    break
                except Exception as exc:
                    self._status_rows.clear()
                    if not self._database_answers():
                        return list(items[n:])
                    if attempt == 2:
                        self._refuse_unapplied(item, exc)
        return []

    def _database_answers(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def _refuse_unapplied(self, item: Inbound, exc: Exception) -> None:
        """A message the database refused though it answers: logged and dropped."""
        excerpt = p.clean_text(json.dumps(item.payload, ensure_ascii=False, default=str), 300)
        log.error(
            "player %s: refused a %s message that could not be applied (%s: %s): %s",
            item.player,
            item.kind,
            type(exc).__name__,
            p.clean_text(str(exc), 300),
            excerpt,
        )
        eid = self._endpoint_ids({item.player}).get(item.player)
        if eid is None:
            return
        failure = p.clean_text(f"refused a message that could not be applied: {exc}")
        try:
            with write(self.engine) as conn:
                update_players(
                    conn, {eid: {"last_failure": failure, "last_failure_at": self.clock.now()}}
                )
        except Exception:
            log.exception("player %s: could not note the refused message", item.player)

    def _not_before(
        self, reports: Sequence[tuple[Inbound, int, list[p.PlayerEvent]]]
    ) -> dict[int, datetime]:
        """The not_before (slot) of the deliveries that events name without their slot."""
        wanted: set[int] = set()
        players: set[int] = set()
        for _, eid, events in reports:
            for ev in events:
                if ev.slot is None and ev.delivery_id is not None:
                    wanted.add(ev.delivery_id)
                    players.add(eid)
        if not wanted:
            return {}
        rows = self.host.deliveries(
            CHANNEL, (SENT, DELIVERED, EXPIRED), endpoint_ids=sorted(players)
        )
        return {r.id: as_utc(r.scheduled_for) for r in rows if r.id in wanted and r.scheduled_for}

    def _on_clock(
        self,
        player: str,
        ev: p.PlayerEvent,
        not_before: dict[int, datetime],
        received: datetime,
    ) -> p.PlayerEvent:
        """The event with its times within what can be true (`protocol.within_clock`)."""
        if ev.slot is not None:
            due: datetime | None = p.parse_slot(ev.slot)[1]
        else:
            due = not_before.get(ev.delivery_id or 0)
        bounded = p.within_clock(ev, due, received, self.clock_skew)
        if bounded.clock_note:
            label = f"delivery {ev.delivery_id}" if ev.delivery_id else f"slot {ev.slot}"
            log.warning(
                "player %s: %s about %s: %s; recorded at the nearest possible time",
                player,
                ev.kind,
                label,
                bounded.clock_note,
            )
        return bounded

    def _status(self, item: Inbound, change: dict[str, Any]) -> None:
        state = item.payload.get("state")
        if state not in (p.ONLINE, p.OFFLINE):
            return
        change["online"] = state == p.ONLINE
        try:
            said = p.parse_time(item.payload.get("at"), "at")
        except p.ProtocolError:
            said = None
        if said is not None and said > item.received_at + self.clock_skew:
            log.warning(
                "player %s: its clock is off: its status is dated %s, received at %s",
                item.player,
                p.stamp(said),
                p.stamp(item.received_at),
            )
            said = None
        change["status_at"] = said or item.received_at
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
        re-send programmes that changed (or to players that just came online). With several
        dispatchers, the one that runs the timer does this for every player (each hears
        every player's status); the others let it be."""
        now = self.clock.now()
        elsewhere: set[str] = set()
        if self._events is not None:
            elsewhere = self._events.came_online()
        with self._lock:
            fresh, self._came_online = self._came_online | elsewhere, set()
        if not self.host.leads():
            self._last_full_sync = None  # should it lead later: everyone's programme first
            return
        self.host.expire(CHANNEL, (SENT,), now, "no player acknowledged it before its expiry")
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
        if sent:  # none while the broker is away: it is said once, by the broker link
            log.info("sent %d unacknowledged command(s) again", sent)
        return sent

    def sync(self, now: datetime, force: set[str], everyone_forced: bool) -> int:
        """Send each player its programme when it changed (a slot added or changed, or a
        future slot withdrawn; not merely a slot passing, which players drop themselves),
        or when forced."""
        progs = programmes_by_endpoint(self.host, now, self.sync_horizon)
        built = len(progs)
        sent = self._compare_and_send(progs, now, force, everyone_forced)
        del progs
        give_back_after(built)  # the programmes, built and compared every few seconds
        return sent

    def _compare_and_send(
        self, progs: dict[int, Programme], now: datetime, force: set[str], everyone_forced: bool
    ) -> int:
        for eid in self._synced:
            if eid not in progs:
                progs[eid] = NOTHING  # everything withdrawn, or passed
        forced_ids = set(self._endpoint_ids(force).values())
        for eid in forced_ids:
            progs.setdefault(eid, NOTHING)
        if everyone_forced:
            for eid in player_ids(self.host):
                progs.setdefault(eid, NOTHING)
        now_text = p.stamp(now) or ""
        digests: dict[int, str] = {}  # a slot's entry is one object shared by its players

        def digest(entry: dict[str, Any]) -> str:
            if id(entry) not in digests:
                digests[id(entry)] = _digest(entry)
            return digests[id(entry)]

        # Players of the same slots share one programme object (`programmes_by_endpoint`), so each
        # distinct programme is summarised, given its media's URLs, and compared with what
        # was sent before, once.
        summaries: dict[int, dict[str, tuple[str, str]]] = {}
        verdicts: dict[tuple[int, int], bool] = {}
        due: list[int] = []  # the players to send theirs to
        for eid, entries in progs.items():
            key = id(entries)
            current = summaries.get(key)
            if current is None:
                current = {e["slot"]: (digest(e), e["not_before"]) for e in entries}
                summaries[key] = current
                for e in entries:
                    media = e["media"]
                    e["media"] = self.channel.media_ref(media["sha256"], media["duration"])
            before = self._synced.get(eid)
            forced = everyone_forced or eid in forced_ids
            if not forced and before is not None:
                verdict = verdicts.get((id(before), key))
                if verdict is None:
                    verdict = _changed(before, current, now_text)
                    verdicts[(id(before), key)] = verdict
                if not verdict:
                    continue
            if not forced and before is None and not entries:
                continue
            due.append(eid)
        sent = 0
        for part in chunks(due, ADDRESSES_BY_ID):  # their addresses a part at a time
            names = addresses(self.host, part)
            for eid in part:
                player, entries = names.get(eid), progs[eid]
                if player is not None and self.channel.publish_sync(player, entries):
                    self._synced[eid] = summaries[id(entries)]
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
    def alive(self) -> bool:
        """Its threads run, and the events process when it has one."""
        threads = all(t.is_alive() for t in self._threads)
        return threads and (self._events is None or self._events.alive)

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
                again = self.apply(items)
            except Exception:  # a fault of this loop, not of the messages: try them again
                log.exception("applying %d player message(s) failed; retrying", len(items))
                again = list(items)
            if again:
                for item in again:
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


def _refuse(player: str, exc: Exception, change: dict[str, Any], now: datetime) -> None:
    """A message or record that breaks the protocol: logged, and kept on its device."""
    reason = p.clean_text(f"rejected a malformed event: {exc}")
    change.update(last_failure=reason, last_failure_at=now)
    log.warning("player %s: %s", player, reason)


def _track_playing(ev: p.PlayerEvent, change: dict[str, Any]) -> None:
    """Events arrive in order: the last start or end in a batch says what plays now."""
    label = f"delivery {ev.delivery_id}" if ev.delivery_id else f"slot {ev.slot}"
    if ev.kind == p.STARTED and not ev.as_run:
        change.update(playing=label, playing_since=ev.at)
    elif ev.kind in (p.FINISHED, p.FAILED) and not ev.as_run:
        change["playing"] = None
    if ev.kind == p.FAILED:
        change.update(last_failure=f"{label}: {ev.reason}", last_failure_at=ev.at)
