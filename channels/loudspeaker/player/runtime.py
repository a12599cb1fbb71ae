"""Running players: MQTT links (one connection for one player, or shared by many simulated
players), media downloads, and the loop that feeds commands and time to each Player."""

from __future__ import annotations

import hashlib
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from channels.loudspeaker import protocol as p
from channels.loudspeaker.mqtt import BrokerAddress, broker_protocol, connect_async, new_client
from channels.loudspeaker.mqtt_loop import NetworkLoop
from channels.loudspeaker.player.core import Player, StateFile
from channels.loudspeaker.player.sinks import Sink
from channels.loudspeaker.settings import BrokerSettings
from channels.loudspeaker.signing import origin

log = logging.getLogger(__name__)
# Seconds the players' thread spends on what arrived (commands, links, downloads), and as
# long on ticks, between two looks at the network. A look reads what came, writes the
# acknowledgements and keeps the connections alive (the broker cuts one it has not heard
# from for 1.5 × keepalive; reconnected, it is sent again every command not acknowledged).
WORK_PER_ROUND = 0.1


def now_utc() -> datetime:
    return datetime.now(UTC)


class Downloader:
    """Fetches media once per sha256 into a shared folder, verifying the checksum. It sends
    a player's token to `media_origin` only (scheme://host:port of coso's public URL)."""

    def __init__(
        self,
        media_dir: Path,
        tokens: Callable[[str], str],
        workers: int = 4,
        media_origin: str | None = None,
    ) -> None:
        self.media_dir = media_dir
        self.media_origin = origin(media_origin) if media_origin else None
        media_dir.mkdir(parents=True, exist_ok=True)
        self._tokens = tokens
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media")
        self._http = httpx.Client(timeout=30)
        self._waiting: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def fetch(
        self,
        player_id: str,
        media: dict[str, Any],
        done: Callable[[list[str], str, str | None], None],
    ) -> None:
        sha = media["sha256"]
        with self._lock:
            if sha in self._waiting:
                self._waiting[sha].append(player_id)
                return
            self._waiting[sha] = [player_id]
        self._pool.submit(self._download, player_id, media, done)

    def _download(
        self,
        player_id: str,
        media: dict[str, Any],
        done: Callable[[list[str], str, str | None], None],
    ) -> None:
        sha, error = media["sha256"], None
        target = self.media_dir / f"{sha}.mp3"
        try:
            if self.media_origin is None or origin(media["url"]) != self.media_origin:
                raise ValueError(f"{media['url']!r} is not on coso's media origin")
            response = self._http.get(
                media["url"],
                headers={
                    "Authorization": f"Bearer {self._tokens(player_id)}",
                    "X-Coso-Player": player_id,
                },
            )
            if response.status_code != 200:
                error = f"HTTP {response.status_code} from {media['url']}"
            elif hashlib.sha256(response.content).hexdigest() != sha:
                error = "checksum mismatch: the file is not the one announced"
            else:
                partial = target.with_suffix(f".{threading.get_ident()}.part")
                partial.write_bytes(response.content)
                partial.replace(target)
        except (httpx.HTTPError, ValueError) as exc:
            error = f"cannot download {media['url']}: {exc}"
        with self._lock:
            players = self._waiting.pop(sha, [])
        done(players, sha, error)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


class Runner:
    """Drives any number of players on the thread of their network loop: commands in the
    order they arrived, ticks when a player asks for one. Whatever arrives (commands, a link
    going up or down, a finished download) waits in an inbox, from any thread, and is taken
    at most WORK_PER_ROUND seconds at a time, the ticks likewise: between two such turns the
    loop looks at the network, so the connections' acknowledgements and keepalive go out
    however much work arrives at once."""

    def __init__(self, now: Callable[[], datetime] = now_utc) -> None:
        self.players: dict[str, Player] = {}
        self.links: dict[str, MqttLink] = {}
        self.loop = NetworkLoop("players", tick=self.tick)
        self._now = now
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wakes: list[tuple[datetime, str]] = []

    def add(self, player: Player, link: MqttLink) -> None:
        self.players[player.id] = player
        self.links[player.id] = link

    # called from any thread
    def command(self, player_id: str, payload: dict[str, Any]) -> None:
        self._hand(("command", (player_id, payload)))

    def link_state(self, player_ids: Sequence[str], up: bool) -> None:
        for player_id in player_ids:  # one by one: 500 uploads and saves are no one turn
            self._hand(("link", (player_id, up)))

    def media_done(self, player_ids: list[str], sha: str, error: str | None) -> None:
        for player_id in player_ids:
            self._hand(("media", (player_id, sha, error)))

    def _hand(self, item: tuple[str, Any]) -> None:
        """Never acted on at once, even on the loop's thread: a connection's messages are
        read (and acknowledged) as fast as they come, and acted on in turns."""
        self._inbox.put(item)
        self.loop.wake()

    def start(self) -> Runner:
        now = self._now()
        for player_id in self.players:
            heapq.heappush(self._wakes, (now, player_id))
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()

    def tick(self) -> float | None:
        """On the loop's thread, each round: a turn at what arrived, a turn at the players
        that are due; returns the seconds until the next one is (0: work is left)."""
        deadline = time.monotonic() + WORK_PER_ROUND
        while not self._inbox.empty():
            self._take(self._inbox.get_nowait())
            if time.monotonic() >= deadline:
                break
        self._tick_due(time.monotonic() + WORK_PER_ROUND)
        if not self._inbox.empty():
            return 0.0
        if not self._wakes:
            return None
        return max(0.0, (self._wakes[0][0] - self._now()).total_seconds())

    def _take(self, item: tuple[str, Any]) -> None:
        kind, data = item
        now = self._now()
        try:
            if kind == "command":
                player_id, payload = data
                self.players[player_id].handle(payload, now)
                self._wake(player_id, now)
            elif kind == "link":
                player_id, up = data
                self._link_changed(self.players[player_id], up, now)
            elif kind == "media":
                player_id, sha, error = data
                self.players[player_id].media_ready(sha, error, now)
                self._wake(player_id, now)
        except Exception:
            log.exception("player runtime: %s failed", kind)

    def _link_changed(self, player: Player, up: bool, now: datetime) -> None:
        player.online = up
        if not up:
            return
        uploads = player.as_run_upload(now)
        if not uploads:
            return  # nothing kept while offline: nothing to save either
        for n, upload in enumerate(uploads):
            if not self.links[player.id].publish_event(player.id, upload):
                unsent = [record for rest in uploads[n:] for record in rest["records"]]
                player.state.outbox = unsent + player.state.outbox
                break
        player.store.save(player.state)

    def _wake(self, player_id: str, when: datetime) -> None:
        heapq.heappush(self._wakes, (when, player_id))

    def _tick_due(self, deadline: float) -> None:
        """Tick the players that are due, until `deadline` (monotonic); the others stay due
        for the next turn."""
        now = self._now()
        seen: set[str] = set()
        while self._wakes and self._wakes[0][0] <= now and time.monotonic() < deadline:
            _, player_id = heapq.heappop(self._wakes)
            if player_id in seen:
                continue
            seen.add(player_id)
            try:
                wake = self.players[player_id].tick(now)
            except Exception:
                log.exception("player %s: tick failed", player_id)
                continue
            if wake is not None:
                self._wake(player_id, wake)


class MqttLink:
    """One MQTT connection carrying the commands, events and status of `player_ids`. With one
    player it also sets that player's last will (retained `offline`)."""

    def __init__(
        self,
        client_id: str,
        player_ids: Sequence[str],
        address: BrokerAddress,
        settings: BrokerSettings,
        topics: p.Topics,
        runner: Runner,
    ) -> None:
        self.loop = runner.loop
        self.player_ids = list(player_ids)
        self.address, self.settings, self.topics, self.runner = address, settings, topics, runner
        self.protocol = broker_protocol(address, settings)
        self.client = new_client(client_id, address, settings, self.protocol, persistent=True)
        # Events go out as they happen, none held back: a player has a few per broadcast,
        # and paho's bound walks every message it holds on each PUBACK.
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        if len(self.player_ids) == 1:
            player = self.player_ids[0]
            self.client.will_set(
                topics.status(player), self._status(player, p.OFFLINE), qos=1, retain=True
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.dropped = False

    def _status(self, player: str, state: str) -> bytes:
        return p.encode({"state": state, "player": player, "at": p.stamp(now_utc())})

    def start(self) -> MqttLink:
        connect_async(
            self.client, self.address, self.settings.keepalive, self.protocol, True, self.loop
        )
        return self

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("player link %s: broker refused: %s", self.player_ids[:1], reason)
            return
        topics = [(self.topics.commands(pid), 1) for pid in self.player_ids]
        for start in range(0, len(topics), 500):
            client.subscribe(topics[start : start + 500])
        for pid in self.player_ids:
            client.publish(self.topics.status(pid), self._status(pid, p.ONLINE), qos=1, retain=True)
        self.runner.link_state(self.player_ids, True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.runner.link_state(self.player_ids, False)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            player, kind = self.topics.parse(message.topic)
            if kind == "cmd":
                self.runner.command(player, p.decode(message.payload))
        except p.ProtocolError as exc:
            log.warning("player link: ignored a message on %s: %s", message.topic, exc)

    def publish_event(self, player: str, payload: dict[str, Any]) -> bool:
        if self.dropped or not self.client.is_connected():
            return False
        info = self.client.publish(self.topics.events(player), p.encode(payload), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def drop(self) -> None:
        """Lose the link abruptly, as a 3G modem does (tests): no DISCONNECT, so the broker
        publishes the last will; the player keeps playing its programme."""
        self.dropped = True
        self.loop.pause(self.client)
        self.runner.link_state(self.player_ids, False)

    def restore(self) -> None:
        self.dropped = False
        self.loop.resume(self.client)

    def stop(self) -> None:
        if self.client.is_connected():
            for pid in self.player_ids:
                self.client.publish(
                    self.topics.status(pid), self._status(pid, p.OFFLINE), qos=1, retain=True
                )
        self.loop.disconnect(self.client)


class PlayerGroup:
    """N players in one process: `coso player` (N = 1) and `coso players simulate`."""

    def __init__(
        self,
        player_ids: Sequence[str],
        address: BrokerAddress,
        settings: BrokerSettings,
        topics: p.Topics,
        *,
        data_dir: Path,
        tokens: Callable[[str], str],
        sink: Callable[[], Sink],
        keep_state: bool,
        per_connection: int = 500,
        keys: Callable[[str], tuple[str, int]] | None = None,
        media_origin: str | None = None,
    ) -> None:
        """`tokens`, `keys` (key, generation) and `media_origin`: each player's credentials
        as given at provisioning (`coso players credentials ID`)."""
        self.runner = Runner()
        self.downloader = Downloader(data_dir / "media", tokens, media_origin=media_origin)
        self.links: list[MqttLink] = []
        ids = list(player_ids)
        chunks = [ids[i : i + per_connection] for i in range(0, len(ids), per_connection)]
        for number, chunk in enumerate(chunks):
            # The topic prefix is part of the id: two deployments (or two test runs) on one
            # broker with the same player ids must not take over each other's sessions.
            space = hashlib.sha256(topics.prefix.encode()).hexdigest()[:8]
            client_id = (
                f"coso-player-{space}-{chunk[0]}"
                if len(chunk) == 1
                else f"coso-sim-{space}-{chunk[0]}-{number}"
            )
            link = MqttLink(client_id, chunk, address, settings, topics, self.runner)
            self.links.append(link)
            for player_id in chunk:
                state = StateFile(data_dir / f"{player_id}.json" if keep_state else None)
                player = Player(
                    player_id,
                    sink(),
                    self.downloader.media_dir,
                    state,
                    emit=link.publish_event,
                    fetch=lambda pid, media: self.downloader.fetch(
                        pid, media, self.runner.media_done
                    ),
                    key=keys(player_id)[0] if keys else None,
                    key_gen=keys(player_id)[1] if keys else 0,
                    media_origin=media_origin,
                )
                self.runner.add(player, link)

    def start(self) -> PlayerGroup:
        for link in self.links:
            link.start()
        self.runner.start()
        return self

    def stop(self) -> None:
        for link in self.links:
            link.stop()
        self.runner.stop()
        self.downloader.close()

    def player(self, player_id: str) -> Player:
        return self.runner.players[player_id]
