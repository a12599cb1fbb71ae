"""The dispatcher's side of the loudspeaker channel: apply what players report (events,
as-run uploads, online/offline), keep their programmes in sync, send again what no player
acknowledged, and expire commands that reached nobody in time."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, tuple_

from channels import protocol as p
from channels.devices import PlayerStatus, update_players
from channels.endpoints import Endpoint
from channels.loudspeaker import Inbound, LoudspeakerChannel, event_outcomes
from coso.clock import Clock
from coso.config import Settings
from coso.db import write
from coso.durations import parse_duration
from dispatcher.messages import build_messages
from dispatcher.models import Delivery
from dispatcher.player_events import EventsProcess
from dispatcher.states import DELIVERED, EXPIRED, SENT
from dispatcher.transitions import (
    LOG_SOURCE,
    append_log,
    apply_outcomes,
    log_rows,
    move_where,
)
from schedules.programme import programmes

log = logging.getLogger(__name__)
D = Delivery.__table__
E = Endpoint.__table__
PS = PlayerStatus.__table__
CHANNEL = "loudspeaker"
INGEST_BATCH = 1000  # player messages applied in one write transaction, at most
INGEST_LINGER = 0.05  # seconds a batch waits for more messages after its first
SYNC_CHECK = timedelta(seconds=5)  # how often programmes are compared for changes


class PlayerService:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        channel: LoudspeakerChannel,
        came_online: Callable[[str], None] | None = None,
    ) -> None:
        """`came_online`: told of each player that says `online` (in the events process:
        passes it to the dispatcher's); by default kept here for the next upkeep."""
        self.engine, self.clock, self.channel = engine, clock, channel
        self.settings = settings
        self._report_online = came_online
        self._events: EventsProcess | None = None
        cfg = settings.channels.loudspeaker
        self.ack_timeout = parse_duration(cfg.ack_timeout)
        self.sync_every = parse_duration(cfg.sync_every)
        self.sync_horizon = parse_duration(cfg.sync_horizon)
        self._endpoints: dict[str, int] = {}
        self._addresses: dict[int, str] = {}
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
        outcomes, orphans = self._outcomes(reports)
        with write(self.engine) as conn:  # everything read and built before the write lock
            applied, refused = apply_outcomes(conn, outcomes)
            self._reject(conn, refused, orphans, device, now)
            update_players(conn, device, self._status_rows)
        return len(applied)

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

    def _outcomes(
        self, reports: list[tuple[str, int, list[p.PlayerEvent]]]
    ) -> tuple[list[Any], list[tuple[str, int, p.PlayerEvent]]]:
        slot_refs = {
            (eid, ev.slot)
            for _, eid, evs in reports
            for ev in evs
            if ev.delivery_id is None and ev.slot
        }
        by_slot: dict[tuple[int, str], int] = {}
        keys = [(eid, *_split_slot(slot)) for eid, slot in slot_refs]
        keys = [k for k in keys if k[1] is not None]
        if keys:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(D.c.id, D.c.endpoint_id, D.c.schedule_id, D.c.scheduled_for).where(
                        tuple_(D.c.endpoint_id, D.c.schedule_id, D.c.scheduled_for).in_(keys)
                    )
                )
                for did, eid, sid, when in rows:
                    by_slot[(eid, p.slot_key(sid, when))] = did
        outcomes: list[Any] = []
        orphans: list[tuple[str, int, p.PlayerEvent]] = []
        for player, eid, events in reports:
            slots = {slot: did for (e, slot), did in by_slot.items() if e == eid}
            found, unknown = event_outcomes(eid, player, events, slots, self.channel.late_after)
            outcomes += found
            orphans += [(player, eid, ev) for ev in unknown]
        return outcomes, orphans

    def _reject(
        self,
        conn: Any,
        refused: Sequence[Any],
        orphans: Sequence[tuple[str, int, p.PlayerEvent]],
        device: dict[int, dict[str, Any]],
        now: datetime,
    ) -> None:
        """A refused outcome is stale (a repeat, or overtaken), forged (about another player's
        delivery) or about nothing coso sent. The last two are logged and kept on the device."""
        rows = {}
        if refused:
            rows = {
                r.id: r
                for r in conn.execute(
                    select(*LOG_SOURCE).where(D.c.id.in_({o.delivery_id for o in refused}))
                )
            }
        entries = []
        for o in refused:
            row = rows.get(o.delivery_id)
            player = o.actor.removeprefix("player:").split(" ")[0]
            if row is not None and row.endpoint_id == o.endpoint_id:
                continue  # stale: the delivery is already further on
            if row is None:
                reason = (
                    f"rejected {o.event!r} about delivery {o.delivery_id}, which coso never sent"
                )
            else:
                owner = self._address_of(row.endpoint_id)
                reason = (
                    f"rejected {o.event!r} from player {player} about delivery {o.delivery_id}, "
                    f"which was addressed to player {owner}"
                )
                entries += log_rows(
                    [row], at=now, event="rejected", state=None, actor=o.actor, detail=reason
                )
            log.warning("%s", reason)
            device.setdefault(o.endpoint_id, {}).update(last_failure=reason, last_failure_at=now)
        for player, eid, ev in orphans:
            reason = (
                f"rejected {ev.kind!r} from player {player} about slot {ev.slot}, unknown to coso"
            )
            log.warning("%s", reason)
            device.setdefault(eid, {}).update(last_failure=reason, last_failure_at=now)
        append_log(conn, entries)

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
                    self._addresses[eid] = address
        return {a: self._endpoints[a] for a in players if a in self._endpoints}

    def _address_of(self, endpoint_id: int) -> str:
        if endpoint_id not in self._addresses:
            with self.engine.connect() as conn:
                self._addresses[endpoint_id] = conn.scalar(
                    select(E.c.address).where(E.c.id == endpoint_id)
                ) or str(endpoint_id)
        return self._addresses[endpoint_id]

    # --- upkeep -------------------------------------------------------------------------

    def upkeep(self) -> None:
        """Expire what reached no player in time, send again what was not acknowledged, and
        re-send programmes that changed (or to players that just came online)."""
        now = self.clock.now()
        with write(self.engine) as conn:
            move_where(
                conn,
                and_(D.c.channel == CHANNEL, D.c.state == SENT, D.c.expires_at <= now),
                EXPIRED,
                at=now,
                event="expired",
                actor="dispatcher",
                detail="no player acknowledged it before its expiry",
            )
        elsewhere: set[str] = set()
        if self._events is not None:
            self._keep_events_process()
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
        online = select(PS.c.endpoint_id).where(PS.c.online.is_(True))
        condition = and_(
            D.c.channel == CHANNEL,
            D.c.state.in_((SENT, DELIVERED)),
            or_(D.c.expires_at.is_(None), D.c.expires_at > now),
            D.c.endpoint_id.in_(online.scalar_subquery()),
        )
        fresh_ids = [self._endpoints[a] for a in self._endpoint_ids(players)]
        if fresh_ids:
            condition = and_(
                condition, or_(D.c.updated_at <= stale, D.c.endpoint_id.in_(fresh_ids))
            )
        else:
            condition = and_(condition, D.c.updated_at <= stale)
        with self.engine.connect() as conn:
            rows = conn.execute(select(D).where(condition).limit(5000)).all()
        due = [
            r
            for r in rows
            if r.endpoint_id in fresh_ids or self._redelivered.get(r.id, r.updated_at) <= stale
        ]
        if not due:
            return 0
        messages = [m for m in build_messages(self.engine, due) if not isinstance(m, tuple)]
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
        progs = programmes(self.engine, now, self.sync_horizon)
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
        to one (role "commands"), else in a thread too."""
        if self.channel.role == "commands":
            self._events = EventsProcess(self.settings).start()
        else:
            self.start_ingest()
        self._spawn("player-upkeep", self._upkeep_loop)

    @property
    def events_process(self) -> EventsProcess | None:
        """The process applying player events, when they are applied in one."""
        return self._events

    def start_ingest(self) -> None:
        self._spawn("player-events", self._ingest_loop)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _keep_events_process(self) -> None:
        assert self._events is not None
        if not self._events.alive and not self._stop.is_set():
            log.error("the player events process ended; starting it again")
            self._events = EventsProcess(self.settings).start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        if self._events is not None:
            self._events.stop()

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

    def _upkeep_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.upkeep()
            except Exception:
                log.exception("loudspeaker upkeep failed; retrying")


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def _changed(
    before: dict[str, tuple[str, str]], current: dict[str, tuple[str, str]], now: str
) -> bool:
    """A slot new or different, or one still to come withdrawn."""
    if any(before.get(slot, ("", ""))[0] != digest for slot, (digest, _) in current.items()):
        return True
    return any(not_before > now for slot, (_, not_before) in before.items() if slot not in current)


def _split_slot(slot: str) -> tuple[int | None, datetime | None]:
    schedule, _, when = slot.partition("@")
    try:
        return int(schedule), p.parse_time(when, "slot")
    except (ValueError, p.ProtocolError):
        return None, None


def _track_playing(ev: p.PlayerEvent, change: dict[str, Any]) -> None:
    """Events arrive in order: the last start or end in a batch says what plays now."""
    label = f"delivery {ev.delivery_id}" if ev.delivery_id else f"slot {ev.slot}"
    if ev.kind == p.STARTED and not ev.as_run:
        change.update(playing=label, playing_since=ev.at)
    elif ev.kind in (p.FINISHED, p.FAILED) and not ev.as_run:
        change["playing"] = None
    if ev.kind == p.FAILED:
        change.update(last_failure=f"{label}: {ev.reason}", last_failure_at=ev.at)
