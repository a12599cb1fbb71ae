"""A player's behaviour, without the network: it takes commands and the time, plays its
programme, and produces protocol events. The link (links.py) carries them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels.loudspeaker import protocol as p
from channels.loudspeaker.player.sinks import Sink, remaining
from channels.loudspeaker.signing import Refused, Repeated, Verifier, origin

log = logging.getLogger(__name__)
RANK = {"normal": 0, "priority": 1, "emergency": 2}
# An entry played from the programme that no command has named after this long is
# uploaded as an as-run record keyed by its slot.
UNBOUND_AS_RUN_AFTER = timedelta(minutes=2)
AS_RUN_RECORDS = 200  # events per as_run message: about 40 KB, well under coso's max_payload

DOWNLOAD_TRIES = 5  # then an entry that needs the clip fails, with the last error

WAITING, PLAYING, FINISHED, FAILED, EXPIRED = "waiting", "playing", "finished", "failed", "expired"


@dataclass
class Entry:
    """One thing to play: a programme slot, a command, or both once a command names a slot."""

    key: str
    media: dict[str, Any]
    not_before: str
    expires_at: str | None
    priority: str = "normal"
    volume: int | None = None
    title: str = ""
    order: int = 0  # among due entries of the same priority and time: lower plays first
    delivery_id: int | None = None
    slot: str | None = None
    state: str = WAITING
    started_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    reported: list[str] = field(default_factory=list)  # "as_run" once uploaded by slot


@dataclass
class PlayerState:
    entries: dict[str, Entry] = field(default_factory=dict)
    by_delivery: dict[int, str] = field(default_factory=dict)
    volume: int = 80
    volume_set: bool = False  # by an operator's set_volume: it then overrides commands'
    seq: int = 0
    outbox: list[dict[str, Any]] = field(default_factory=list)  # events not yet acknowledged
    seen: dict[str, str] = field(default_factory=dict)  # nonce → sent_at of commands acted on


class StateFile:
    """The player's state on disk (programme, what it has seen, events not yet uploaded), so a
    restart neither replays nor forgets. `None` path: memory only (simulations)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> PlayerState:
        if self.path is None or not self.path.exists():
            return PlayerState()
        data = json.loads(self.path.read_text())
        state = PlayerState(
            volume=data["volume"],
            volume_set=data.get("volume_set", False),
            seq=data["seq"],
            outbox=data["outbox"],
            seen=data.get("seen", {}),
        )
        for raw in data["entries"]:
            entry = Entry(**raw)
            state.entries[entry.key] = entry
            if entry.delivery_id is not None:
                state.by_delivery[entry.delivery_id] = entry.key
        return state

    def save(self, state: PlayerState) -> None:
        if self.path is None:
            return
        data = {
            "volume": state.volume,
            "volume_set": state.volume_set,
            "seq": state.seq,
            "outbox": state.outbox,
            "seen": state.seen,
            "entries": [asdict(e) for e in state.entries.values()],
        }
        partial = self.path.with_suffix(".part")
        partial.write_text(json.dumps(data))
        os.replace(partial, self.path)


def _t(value: str | None) -> datetime | None:
    return p.parse_time(value, "time") if value else None


class Player:
    """Reacts to commands and the passing of time; `emit` publishes an event (and returns
    True when the link took it), `fetch` starts a media download that later calls back
    `media_ready`. `key`/`key_gen`: the command key this player was given (without one it
    acts on no command); `media_origin`: the only scheme://host:port it fetches media from."""

    def __init__(
        self,
        player_id: str,
        sink: Sink,
        media_dir: Path,
        store: StateFile,
        emit: Callable[[str, dict[str, Any]], bool],
        fetch: Callable[[str, dict[str, Any]], None],
        *,
        key: str | None = None,
        key_gen: int = 0,
        media_origin: str | None = None,
    ) -> None:
        self.id = p.check_player_id(player_id)
        self.sink, self.media_dir, self.store = sink, media_dir, store
        self._emit, self._fetch = emit, fetch
        self.state = store.load()
        self.verifier = Verifier(self.id, key, key_gen, self.state.seen) if key else None
        self.media_origin = origin(media_origin) if media_origin else None
        self.ready: set[str] = set()  # sha256 of media on disk and verified
        self.failed_media: dict[str, tuple[str, int, datetime]] = {}  # error, tries, retry at
        self.current: Entry | None = None
        self.online = False
        self._batch: list[dict[str, Any]] | None = None  # events held for one message
        for entry in self.state.entries.values():
            if entry.state == PLAYING:  # a restart cut it short
                entry.state, entry.reason = FAILED, "player restarted while playing"
                self._report(entry, p.FAILED, datetime.now(UTC))

    # --- commands -------------------------------------------------------------------

    def handle(self, payload: dict[str, Any], now: datetime) -> bool:
        """Act on a command if it is signed for this player; False when refused."""
        try:
            if self.verifier is None:
                raise Refused("this player was given no command key")
            self.verifier.check(payload, now)
        except Repeated as exc:
            log.debug("player %s: a command again: %s", self.id, exc)
            return False
        except Refused as exc:
            log.warning(
                "player %s: refused a %r command: %s", self.id, str(payload.get("type"))[:20], exc
            )
            return False
        with self._one_message():
            self._handle(payload, now)
        return True

    def media_allowed(self, media: Any) -> str | None:
        """Why `media` may not be fetched (None: it may): only from coso's media origin, so
        this player's token never goes to another host."""
        url = media.get("url") if isinstance(media, dict) else None
        if not isinstance(url, str):
            return "media has no url"
        if self.media_origin is None:
            return "this player was given no media origin"
        if origin(url) != self.media_origin:
            return f"media url {url[:200]!r} is not on coso's media origin {self.media_origin}"
        return None

    def _handle(self, payload: dict[str, Any], now: datetime) -> None:
        kind = payload.get("type")
        if kind in (p.PLAY, p.INTERRUPT):
            self._play_command(payload, now)
        elif kind == p.STOP:
            expires = p.parse_time(payload.get("expires_at"), "expires_at")
            if expires is not None and now > expires:
                log.info("player %s: a stop sent while it was offline ignored", self.id)
            elif self.current is not None:
                self._end_current(FAILED, now, "stopped by the operator")
        elif kind == p.SET_VOLUME:
            self.state.volume = max(0, min(100, int(payload.get("volume", self.state.volume))))
            self.state.volume_set = True
        elif kind == p.SYNC:
            self._sync(payload.get("entries", []), now)
        else:
            log.warning("player %s: unknown command %r ignored", self.id, kind)
        self.store.save(self.state)

    def _play_command(self, c: dict[str, Any], now: datetime) -> None:
        delivery_id = int(c["delivery_id"])
        known = self.state.by_delivery.get(delivery_id)
        if known is not None:
            self._reacknowledge(self.state.entries[known], now)
            return
        key = c.get("slot") or f"d{delivery_id}"
        refused = self.media_allowed(c.get("media"))
        if refused is not None:
            log.warning("player %s: delivery %s refused: %s", self.id, delivery_id, refused)
            entry = Entry(
                key=f"d{delivery_id}",
                media=c.get("media") if isinstance(c.get("media"), dict) else {},
                not_before=c.get("not_before") or (p.stamp(now) or ""),
                expires_at=c.get("expires_at"),
                delivery_id=delivery_id,
                state=FAILED,
                finished_at=p.stamp(now),
                reason=refused,
            )
            self.state.entries[entry.key] = entry  # a repeat is answered, not refused again
            self.state.by_delivery[delivery_id] = entry.key
            self._report(entry, p.FAILED, now)
            return
        entry = self.state.entries.get(key)
        if entry is None:
            entry = Entry(
                key=key,
                media=c["media"],
                not_before=c["not_before"],
                expires_at=c.get("expires_at"),
                slot=c.get("slot"),
            )
            self.state.entries[key] = entry
        entry.delivery_id = delivery_id
        entry.priority = c.get("priority", "normal")
        entry.order = _order(c)
        entry.volume = c.get("volume")
        entry.title = c.get("title", "")
        entry.expires_at = c.get("expires_at")
        self.state.by_delivery[delivery_id] = key
        if entry.state == WAITING:
            # The command is what coso sent this player: its clip wins over the programme's
            # (a rotation picks each player's item when the slot fires).
            entry.media = c["media"]
            expires = _t(entry.expires_at)
            if expires is not None and expires <= now:
                entry.state, entry.reason = EXPIRED, "reached the player after its expiry"
            elif c["type"] == p.INTERRUPT:
                entry.not_before = p.stamp(now) or entry.not_before
            self._want(entry.media)
        self._reacknowledge(entry, now)
        if c["type"] == p.INTERRUPT and entry.state == WAITING and self.current is not None:
            self._end_current(FAILED, now, f"interrupted by emergency delivery {delivery_id}")

    def _reacknowledge(self, entry: Entry, now: datetime) -> None:
        """Tell coso where this entry stands (again, for a repeated command): received, and
        how it ended if it did. Played once, whatever happens to the command."""
        if entry.state == EXPIRED:
            self._report(entry, p.EXPIRED, now)
            return
        self._report(entry, p.RECEIVED, now)
        if entry.state == PLAYING:
            self._report(entry, p.STARTED, now)
        elif entry.state in (FINISHED, FAILED):
            self._report(entry, p.FINISHED if entry.state == FINISHED else p.FAILED, now)

    def _sync(self, entries: list[dict[str, Any]], now: datetime) -> None:
        wanted = {e["slot"]: e for e in entries}
        for key, entry in list(self.state.entries.items()):
            if (
                entry.slot
                and entry.delivery_id is None
                and entry.state == WAITING
                and key not in wanted
            ):
                del self.state.entries[key]  # dropped from the programme
        for slot, e in wanted.items():
            refused = self.media_allowed(e.get("media"))
            if refused is not None:
                log.warning("player %s: programme slot %s refused: %s", self.id, slot, refused)
                continue
            entry = self.state.entries.get(slot)
            if entry is None:
                self.state.entries[slot] = Entry(
                    key=slot,
                    slot=slot,
                    media=e["media"],
                    not_before=e["not_before"],
                    expires_at=e.get("expires_at"),
                    priority=e.get("priority", "normal"),
                    volume=e.get("volume"),
                    title=e.get("title", ""),
                    order=_order(e),
                )
            elif entry.state == WAITING and entry.delivery_id is None:
                # (A slot whose command came ahead of it keeps the command's clip and times.)
                entry.media, entry.not_before = e["media"], e["not_before"]
                entry.expires_at, entry.priority = e.get("expires_at"), e.get("priority", "normal")
                entry.order = _order(e)
            self._want(e["media"])
        self._forget_old(now)

    def _forget_old(self, now: datetime) -> None:
        """Keep a week of history (what was seen must still be recognised)."""
        horizon = now - timedelta(days=7)
        for key, entry in list(self.state.entries.items()):
            when = _t(entry.finished_at or entry.not_before)
            if entry.state != WAITING and when is not None and when < horizon:
                del self.state.entries[key]
                if entry.delivery_id is not None:
                    self.state.by_delivery.pop(entry.delivery_id, None)

    # --- media ------------------------------------------------------------------------

    def media_path(self, sha256: str) -> Path:
        return self.media_dir / f"{sha256}.mp3"

    def _want(self, media: dict[str, Any]) -> None:
        sha = media["sha256"]
        if sha in self.ready:
            return
        path = self.media_path(sha)
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha:
            self.ready.add(sha)
            return
        self._fetch(self.id, media)

    def media_ready(self, sha256: str, error: str | None, now: datetime) -> None:
        if error is None:
            self.ready.add(sha256)
            self.failed_media.pop(sha256, None)
            return
        tries = self.failed_media.get(sha256, ("", 0, now))[1] + 1
        self.failed_media[sha256] = (error, tries, now + timedelta(seconds=2**tries))

    # --- time ---------------------------------------------------------------------------

    def tick(self, now: datetime) -> datetime | None:
        """Advance to `now`: finish what ended, expire what is late, start what is due.
        Returns when it next needs a tick (None: only a command can change anything)."""
        with self._one_message():
            return self._tick(now)

    def _tick(self, now: datetime) -> datetime | None:
        changed = False
        if self.current is not None and self.sink.done():
            self._end_current(FINISHED, now, None)
            changed = True
        wake: datetime | None = None
        due: list[Entry] = []
        for entry in self.state.entries.values():
            if entry.state != WAITING:
                continue
            expires = _t(entry.expires_at)
            if expires is not None and expires <= now:
                entry.state, entry.reason = EXPIRED, "not played before its expiry"
                self._report(entry, p.EXPIRED, now)
                changed = True
                continue
            sha = entry.media["sha256"]
            if sha in self.failed_media:
                error, tries, retry_at = self.failed_media[sha]
                if tries >= DOWNLOAD_TRIES and entry.delivery_id is not None:
                    entry.state = FAILED
                    entry.reason = f"media download failed {tries} times: {error}"
                    self._report(entry, p.FAILED, now)
                    changed = True
                    continue
                if tries < DOWNLOAD_TRIES and retry_at <= now:
                    self.failed_media[sha] = (error, tries, now + timedelta(hours=1))
                    self._fetch(self.id, entry.media)
            start = _t(entry.not_before) or now
            if start <= now and sha in self.ready:
                due.append(entry)
            elif start > now:
                wake = start if wake is None else min(wake, start)
        if due and self.current is None:
            due.sort(key=lambda e: (-RANK.get(e.priority, 0), e.not_before, e.order, e.key))
            self._start(due[0], now)
            changed = True
        elif due and self.current is not None:
            top = max(due, key=lambda e: RANK.get(e.priority, 0))
            if (
                RANK.get(top.priority, 0) == RANK["emergency"]
                and self.current.priority != "emergency"
            ):
                self._end_current(FAILED, now, "interrupted by an emergency broadcast")
                self._start(top, now)
                changed = True
        if changed:
            self.store.save(self.state)
        poll = bool(due) or any(
            e.state == WAITING and e.media["sha256"] not in self.ready
            for e in self.state.entries.values()
        )
        if self.current is not None:
            left = remaining(self.sink)
            if left is None:
                poll = True  # a player process: ask it again soon
            else:  # a sink that keeps time itself: wake when it ends
                end = now + timedelta(seconds=left + 0.001)
                wake = end if wake is None else min(wake, end)
        if poll:
            soon = now + timedelta(milliseconds=20)
            wake = soon if wake is None else min(wake, soon)
        return wake

    def _start(self, entry: Entry, now: datetime) -> None:
        entry.state, entry.started_at = PLAYING, p.stamp(now)
        self.current = entry
        volume = self.state.volume
        if entry.volume is not None and not self.state.volume_set:
            volume = entry.volume  # coso's default, until an operator sets this player's
        self.sink.start(
            self.media_path(entry.media["sha256"]), float(entry.media.get("duration", 0)), volume
        )
        self._report(entry, p.STARTED, now)

    def _end_current(self, state: str, now: datetime, reason: str | None) -> None:
        entry = self.current
        assert entry is not None
        if state != FINISHED:
            self.sink.stop()
        entry.state, entry.finished_at, entry.reason = state, p.stamp(now), reason
        self.current = None
        self._report(entry, p.FINISHED if state == FINISHED else p.FAILED, now)

    # --- events -------------------------------------------------------------------------

    def _report(self, entry: Entry, kind: str, now: datetime) -> None:
        """Send an event about a delivery. Without a delivery id (a programme slot played
        before any command named it) the record waits; see `unbound_as_run`."""
        if entry.delivery_id is None:
            return
        at = {
            p.STARTED: entry.started_at,
            p.FINISHED: entry.finished_at,
            p.FAILED: entry.finished_at,
        }.get(kind)
        self.state.seq += 1
        payload = p.event(
            kind,
            at=_t(at) or now,
            delivery_id=entry.delivery_id,
            slot=entry.slot,
            started_at=_t(entry.started_at) if kind == p.FINISHED else None,
            reason=entry.reason if kind in (p.FAILED, p.EXPIRED) else None,
            seq=self.state.seq,
        )
        self.send(payload)

    def send(self, payload: dict[str, Any]) -> None:
        """Publish now when the link is up, else keep it for the as-run upload. Events that
        one command or one tick produces go out together, as one `events` message."""
        if self._batch is not None:
            self._batch.append(payload)
        elif not (self.online and self._emit(self.id, payload)):
            self.state.outbox.append(payload)

    @contextmanager
    def _one_message(self) -> Iterator[None]:
        if self._batch is not None:  # already batching
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            held, self._batch = self._batch, None
            message = held[0] if len(held) == 1 else {"type": p.BATCH, "records": held}
            if held and not (self.online and self._emit(self.id, message)):
                self.state.outbox.extend(held)
                self.store.save(self.state)

    def as_run_upload(self, now: datetime) -> list[dict[str, Any]]:
        """On reconnect: every event kept while offline, plus programme slots played that no
        command has named yet, as `as_run` messages of at most AS_RUN_RECORDS records each
        (coso refuses a message larger than its `max_payload`)."""
        records, self.state.outbox = self.state.outbox, []
        for entry in self.state.entries.values():
            finished = _t(entry.finished_at)
            if (
                entry.delivery_id is None
                and entry.state in (FINISHED, FAILED)
                and finished is not None
                and now - finished > UNBOUND_AS_RUN_AFTER
                and "as_run" not in entry.reported
            ):
                entry.reported.append("as_run")
                self.state.seq += 1
                records.append(
                    p.event(
                        p.FINISHED if entry.state == FINISHED else p.FAILED,
                        at=finished,
                        slot=entry.slot,
                        started_at=_t(entry.started_at),
                        reason=entry.reason,
                        seq=self.state.seq,
                    )
                )
        return [
            {"type": p.AS_RUN, "records": records[i : i + AS_RUN_RECORDS]}
            for i in range(0, len(records), AS_RUN_RECORDS)
        ]


def _order(item: dict[str, Any]) -> int:
    """A command's or programme slot's `order` (0 when absent or not an integer)."""
    order = item.get("order", 0)
    return order if isinstance(order, int) and not isinstance(order, bool) else 0
