"""Commands to players are signed per player: anyone who can publish on the broker cannot
command a player, the player fetches media only from coso's media origin (its token goes
nowhere else), and one player's credentials can be revoked without touching the others."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from channels.loudspeaker import protocol as p
from channels.loudspeaker.credentials import KeyRing
from channels.loudspeaker.mqtt import parse_broker_url
from channels.loudspeaker.signing import (
    Refused,
    Verifier,
    canonical,
    command_key,
    sign,
    signature,
)
from channels.registry import settings_of
from content.media import player_token, token_secret
from content.models import MediaAsset
from coso.config import Settings
from tests.helpers import wait_for
from tests.loudspeakers import (
    clip,
    import_broadcast,
    log_count,
    players,
    plays,
    running_coso,
    slot_in,
    speaker_settings,
)


class Forger:
    """Someone who can publish on the broker (no ACL), and listen to players' events."""

    def __init__(self, settings: Settings) -> None:
        loudspeaker = settings_of(settings, "loudspeaker")
        self.topics = p.Topics(loudspeaker.topic_prefix)
        address = parse_broker_url(loudspeaker.broker.url)
        self.events: list[dict[str, Any]] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda _c, _u, m: self.events.append(json.loads(m.payload))
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe(self.topics.all_events, qos=1)

    def publish(self, player: str, command: dict[str, Any]) -> None:
        info = self.client.publish(self.topics.commands(player), p.encode(command), qos=1)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in list(self.events):
            out += e.get("records", [e]) if e.get("type") in (p.BATCH, p.AS_RUN) else [e]
        return out


def play(delivery_id: int, media: dict[str, Any], now: datetime) -> dict[str, Any]:
    return p.play_command(
        delivery_id=delivery_id,
        media=media,
        not_before=now,
        expires_at=now + timedelta(minutes=5),
        priority="normal",
        volume=80,
        title="Thông báo giả mạo",
        slot=None,
        sent_at=now,
    )


def media_of(engine: Engine, settings: Settings) -> dict[str, Any]:
    with engine.connect() as conn:
        sha, duration = conn.execute(
            select(MediaAsset.sha256, MediaAsset.duration_seconds)  # type: ignore[call-overload]
        ).first()
    url = f"{settings.server.public_url}/media/{sha}.mp3"
    return {"url": url, "sha256": sha, "duration": duration}


def refusals(caplog: pytest.LogCaptureFixture, player: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"player {player}: refused")
    ]


def repeats(caplog: pytest.LogCaptureFixture, player: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.getMessage().startswith(f"player {player}: a command again")
    ]


def test_forged_commands_on_the_broker_are_not_acted_on_while_a_genuine_one_is(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="channels.loudspeaker.player.core")
    settings = speaker_settings(settings, broker_url, tmp_path)
    secret = token_secret(settings.media)
    mine, theirs = command_key(secret, "loa-1", 0), command_key(secret, "loa-2", 0)
    slot = slot_in(6)
    import_broadcast(engine, settings, tmp_path, ["loa-1"], slot, clip(tmp_path, 0.5))
    media = media_of(engine, settings)
    group = players(settings, ["loa-1"], tmp_path).start()
    forger = Forger(settings)
    try:
        with running_coso(engine, settings):
            wait_for(lambda: group.player("loa-1").online, 15, "the player online")
            now = datetime.now(UTC)
            forged = [
                play(900_001, media, now),  # unsigned
                sign(play(900_002, media, now), "loa-1", theirs, 0, now),  # loa-2's key
                sign(play(900_003, media, now), "loa-2", theirs, 0, now),  # loa-2's command
                {  # a genuine command, altered after signing
                    **sign(play(900_004, media, now), "loa-1", mine, 0, now),
                    "delivery_id": 900_005,
                },
                sign(  # signed with the right key, an hour ago (a recorded command)
                    play(900_006, media, now - timedelta(hours=1)),
                    "loa-1",
                    mine,
                    0,
                    now - timedelta(hours=1),
                ),
            ]
            quiet = sign({"type": p.SET_VOLUME, "volume": 30}, "loa-1", mine, 0, now)
            loud = sign({"type": p.SET_VOLUME, "volume": 70}, "loa-1", mine, 0, now)
            for command in [*forged, quiet, loud, quiet]:  # the last: `quiet` replayed
                forger.publish("loa-1", command)
            wait_for(lambda: len(refusals(caplog, "loa-1")) >= 5, 15, "five refusals logged")
            wait_for(lambda: repeats(caplog, "loa-1"), 15, "the repeated command noted")
            wait_for(lambda: log_count(engine, "played") == 1, 30, "the genuine broadcast")
    finally:
        forger.close()
        group.stop()

    player = group.player("loa-1")
    assert plays(group, "loa-1") == 1  # the genuine broadcast only
    assert not {900_001, 900_002, 900_003, 900_004, 900_005, 900_006} & set(
        player.state.by_delivery
    )
    assert player.state.volume == 70  # the replayed `volume 30` was not acted on
    reasons = "\n".join(refusals(caplog, "loa-1"))
    for why in ("unsigned command", "bad signature", "not this one", "older than"):
        assert why in reasons, reasons
    # A command acted on already (a replay, or the broker delivering it again, as it does
    # after a reconnect) is not acted on twice, and is no warning: a note for debugging.
    assert "already acted on" not in reasons
    assert [r.levelno for r in repeats(caplog, "loa-1")] == [logging.DEBUG]
    assert not [r for r in forger.records() if r.get("delivery_id", 0) >= 900_000]


class RecordingServer:
    """A host that is not coso: records every request it gets (and its headers)."""

    def __init__(self) -> None:
        seen: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append({"path": self.path, **dict(self.headers)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"not audio")

            def log_message(self, *_: Any) -> None:
                pass

        self.requests = seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[RecordingServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def test_media_on_another_host_is_refused_and_the_token_never_sent_there(
    settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    secret = token_secret(settings.media)
    key = command_key(secret, "loa-1", 0)
    group = players(settings, ["loa-1"], tmp_path).start()
    forger = Forger(settings)
    try:
        with RecordingServer().running() as elsewhere:
            wait_for(lambda: group.player("loa-1").online, 15, "the player online")
            sha = "ab" * 32
            media = {"url": f"{elsewhere.url}/media/{sha}.mp3", "sha256": sha, "duration": 1.0}
            now = datetime.now(UTC)
            forger.publish("loa-1", sign(play(910_001, media, now), "loa-1", key, 0, now))
            entries = [{"slot": f"7@{p.stamp(now)}", "media": media, "not_before": p.stamp(now)}]
            sync = {"type": p.SYNC, "generated_at": p.stamp(now), "entries": entries}
            forger.publish("loa-1", sign(sync, "loa-1", key, 0, now))

            def failed() -> list[dict[str, Any]]:
                return [r for r in forger.records() if r.get("delivery_id") == 910_001]

            wait_for(lambda: bool(failed()), 15, "the refused delivery reported")
            assert failed()[0]["type"] == p.FAILED
            assert elsewhere.url in failed()[0]["reason"]
            assert "media origin" in failed()[0]["reason"]
            held = group.player("loa-1").state.entries
            assert list(held) == ["d910001"] and held["d910001"].state == "failed"
            assert entries[0]["slot"] not in held  # the programme slot was not taken either
            assert elsewhere.requests == []  # nothing fetched there, no token shown
    finally:
        forger.close()
        group.stop()
    assert player_token(secret, "loa-1") not in json.dumps(elsewhere.requests)


def test_a_revoked_players_old_token_and_key_stop_working_while_others_keep_theirs(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    caplog.set_level(logging.WARNING)
    settings = speaker_settings(settings, broker_url, tmp_path)
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COSO_MEDIA__DIR", settings.media.dir)
    monkeypatch.setenv("COSO_SERVER__PUBLIC_URL", settings.server.public_url)
    secret = token_secret(settings.media)
    ids = ["loa-1", "loa-2"]
    slot = slot_in(8)
    import_broadcast(engine, settings, tmp_path, ids, slot, clip(tmp_path, 0.5))
    media = media_of(engine, settings)
    old_token, old_key = player_token(secret, "loa-1"), command_key(secret, "loa-1", 0)

    runner = CliRunner()
    revoked = runner.invoke(app, ["players", "revoke", "loa-1"])
    assert revoked.exit_code == 0, revoked.output
    given = dict(
        line.split("=", 1) for line in revoked.output.splitlines() if line.startswith("COSO_")
    )
    assert given["COSO_PLAYER_KEY_GEN"] == "1"
    assert given["COSO_PLAYER_TOKEN"] != old_token and given["COSO_PLAYER_KEY"] != old_key
    assert given["COSO_MEDIA_ORIGIN"] == settings.server.public_url
    shown = runner.invoke(app, ["players", "credentials", "loa-1"])
    assert shown.exit_code == 0 and given["COSO_PLAYER_KEY"] in shown.output
    unknown = runner.invoke(app, ["players", "revoke", "loa-x"])
    assert unknown.exit_code != 0 and "loa-x" in unknown.output

    stale = players(settings, ["loa-1"], tmp_path)  # still holds generation 0
    fresh = players(settings, ["loa-2"], tmp_path, engine=engine)
    for group in (stale, fresh):
        group.start()
    try:
        with running_coso(engine, settings):

            def get(player: str, token: str) -> int:
                headers = {"X-Coso-Player": player, "Authorization": f"Bearer {token}"}
                return httpx.get(media["url"], headers=headers, timeout=10).status_code

            assert get("loa-1", old_token) == 401
            assert get("loa-1", given["COSO_PLAYER_TOKEN"]) == 200
            assert get("loa-2", player_token(secret, "loa-2")) == 200  # not revoked

            wait_for(lambda: plays(fresh, "loa-2") == 1, 30, "loa-2 to play the broadcast")
            wait_for(
                lambda: any("key_gen = 1" in m for m in refusals(caplog, "loa-1")),
                15,
                "the stale loa-1 refusing coso's new-generation command",
            )
    finally:
        for group in (stale, fresh):
            group.stop()
    assert plays(stale, "loa-1") == 0

    # coso signs with the new generation; the player given the new key accepts it, and
    # a command signed with the old key is refused by it.
    now = datetime.now(UTC)
    key, generation = KeyRing(engine, secret).key("loa-1")
    assert (key, generation) == (given["COSO_PLAYER_KEY"], 1)
    verifier = Verifier("loa-1", given["COSO_PLAYER_KEY"], 1)
    verifier.check(sign({"type": p.STOP}, "loa-1", key, generation, now), now)
    with pytest.raises(Refused):
        verifier.check(sign({"type": p.STOP}, "loa-1", old_key, 0, now), now)


def test_the_documented_signature_example_holds() -> None:
    """docs/player-protocol.md, "Signed commands": a third-party player can check its code
    against these values."""
    secret = b"example-secret"
    key = command_key(secret, "loa-001", 0)
    command = {
        "v": 1,
        "type": "set_volume",
        "volume": 60,
        "sent_at": "2026-12-06T09:00:00.000Z",
        "player": "loa-001",
        "key_gen": 0,
        "nonce": "0123456789abcdef",
    }
    assert canonical(command) == (
        b'{"key_gen":0,"nonce":"0123456789abcdef","player":"loa-001",'
        b'"sent_at":"2026-12-06T09:00:00.000Z","type":"set_volume","v":1,"volume":60}'
    )
    signed = {**command, "sig": signature(command, key)}
    verifier = Verifier("loa-001", key, 0)
    verifier.check(signed, datetime(2026, 12, 6, 9, 0, 30, tzinfo=UTC))
    assert key == EXAMPLE_KEY
    assert signed["sig"] == EXAMPLE_SIG


EXAMPLE_KEY = "e607daf0f89ad3d8e5371343b30d043b3c9d22ab12f4e977f2388edac8a742dd"
EXAMPLE_SIG = "3ff9467dd1a337791ffcb6e2220b131fb049e1e140d732abc73900ff16fb416a"
