"""Brokers beyond the loopback default: TLS with a user per player and the ACL that
docs/player-protocol.md gives (taken from the document itself), and the embedded broker
`coso serve` falls back to when mosquitto is not installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine

from channels.loudspeaker.devices import list_players
from channels.loudspeaker.mqtt import (
    LocalBroker,
    answers,
    connect_and_wait,
    new_client,
    parse_broker_url,
)
from channels.loudspeaker.operator import send_to_players, stop_command
from channels.loudspeaker.protocol import Topics
from channels.loudspeaker.settings import BrokerSettings
from coso.clock import SystemClock
from coso.config import Settings
from coso.errors import InputError
from tests.helpers import wait_for
from tests.loudspeakers import (
    clip,
    import_broadcast,
    log_count,
    players,
    running_coso,
    slot_in,
    speaker_settings,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "player-protocol.md"
USERS = {"coso": "coso-secret", "loa-1": "pw-loa-1", "loa-2": "pw-loa-2"}


def _tools() -> None:
    missing = [t for t in ("mosquitto", "mosquitto_passwd", "openssl") if not _which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install mosquitto openssl")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin")


def doc_block(first_line: str) -> str:
    """A fenced block of the protocol document, by its first line."""
    for block in DOC.read_text().split("```")[1::2]:
        if block.strip("\n").startswith(first_line):
            return block.strip("\n")
    raise AssertionError(f"docs/player-protocol.md has no block starting {first_line!r}")


def _certificates(work: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=coso test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (work / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip


def secured_broker(work: Path) -> LocalBroker:
    """mosquitto configured as the document says, its paths pointing into `work`."""
    _tools()
    _certificates(work)
    passwd = work / "passwd"
    for n, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if n == 0 else []
        subprocess.run(
            [_which("mosquitto_passwd") or "", *flags, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    (work / "acl").write_text(doc_block("# /etc/mosquitto/acl") + "\n")
    options = [
        line.replace("/etc/mosquitto/", f"{work}/")
        for line in doc_block("# /etc/mosquitto/conf.d/coso.conf").splitlines()
        if line.strip() and not line.startswith(("#", "listener"))
    ]
    return LocalBroker(prefer="mosquitto", options="\n".join(options) + "\n").start()


def _client(port: int, user: str, password: str, ca: Path) -> tuple[mqtt.Client, object]:
    """A raw client logged in as `user`; returns it and the reason in its CONNACK."""
    address = parse_broker_url(f"mqtts://{user}:{password}@127.0.0.1:{port}")
    client = new_client(
        f"test-{user}-{password[-3:]}", address, BrokerSettings(ca_file=str(ca)), mqtt.MQTTv311
    )
    reason = connect_and_wait(client, address, 60, 10)
    assert reason is not None, f"the broker did not answer {user}"
    return client, reason


def test_players_over_tls_each_with_its_own_user_and_the_documented_acl(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    work = tmp_path / "broker"
    work.mkdir()
    broker = secured_broker(work)
    ca = work / "ca.crt"
    port = broker.port
    try:
        settings = speaker_settings(
            settings,
            f"mqtts://coso:{USERS['coso']}@127.0.0.1:{port}",
            tmp_path,
            topic_prefix="coso/v1",  # the ACL's
            broker={"url": f"mqtts://coso:{USERS['coso']}@127.0.0.1:{port}", "ca_file": str(ca)},
        )
        ids = ["loa-1", "loa-2"]
        import_broadcast(engine, settings, tmp_path, ids, slot_in(5), clip(tmp_path, 0.5))
        groups = [
            players(
                settings, [pid], tmp_path, broker_url=f"mqtts://{pid}:{USERS[pid]}@127.0.0.1:{port}"
            ).start()
            for pid in ids
        ]
        wrong, refused = _client(port, "loa-1", "not-the-password", ca)
        with pytest.raises(InputError, match="refused the connection"):
            send_to_players(
                parse_broker_url(f"mqtts://coso:wrong@127.0.0.1:{port}"),
                BrokerSettings(ca_file=str(ca)),
                Topics("coso/v1"),
                ["loa-1"],
                stop_command(SystemClock().now()),
            )
        snoop, _ = _client(port, "loa-1", USERS["loa-1"], ca)
        overheard: list[str] = []
        snoop.on_message = lambda _c, _u, m: overheard.append(m.topic)
        snoop.subscribe("coso/v1/players/loa-2/cmd", 1)  # another player's commands
        try:
            with running_coso(engine, settings):
                wait_for(lambda: log_count(engine, "played") == 2, 30, "both played over TLS")
                # loa-1 pretends to be loa-2 going offline: the ACL drops it...
                snoop.publish("coso/v1/players/loa-2/status", b'{"v":1,"state":"offline"}', 1)
                # ...while its own status topic is its to write (the control)
                done = threading.Event()
                snoop.on_publish = lambda *_a: done.set()
                snoop.publish("coso/v1/players/loa-1/status", b'{"v":1,"state":"offline"}', 1)
                done.wait(5)
                online = {}

                def seen() -> bool:
                    online.update({r.address: r.online for r in list_players(engine)})
                    return online.get("loa-1") is False

                wait_for(seen, 10, "loa-1's own offline status applied")
                assert online["loa-2"] is True  # the forged one never reached coso
        finally:
            for group in groups:
                group.stop()
            for client in (wrong, snoop):
                client.loop_stop()
                client.disconnect()
    finally:
        broker.stop()
    assert refused.is_failure  # type: ignore[attr-defined]
    assert overheard == []  # loa-1 never read loa-2's play command


def test_embedded_broker_carries_a_broadcast_when_mosquitto_is_absent(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with LocalBroker(prefer="amqtt") as broker:
        assert broker.kind == "amqtt"
        settings = speaker_settings(settings, broker.url, tmp_path)
        ids = ["loa-1", "loa-2", "loa-3"]
        group = players(settings, ids, tmp_path).start()
        try:
            with running_coso(engine, settings) as dispatcher:
                assert not dispatcher.channels["loudspeaker"].mqtt5  # type: ignore[attr-defined]
                import_broadcast(engine, settings, tmp_path, ids, slot_in(2), clip(tmp_path, 0.5))
                wait_for(lambda: log_count(engine, "played") == 3, 30, "three played via amqtt")
        finally:
            group.stop()


def test_broker_started_for_coso_ends_when_coso_is_killed(tmp_path: Path) -> None:
    """`coso serve` without a broker starts mosquitto; if coso is killed (SIGKILL, a crash),
    that broker must not live on, holding a port nobody knows."""
    _tools()
    script = (
        "import sys, time\n"
        "from channels.loudspeaker.mqtt import LocalBroker\n"
        "b = LocalBroker(prefer='mosquitto').start()\n"
        "print(b.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parent.parent
    coso = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert coso.stdout is not None
    port = int(coso.stdout.readline())
    assert answers("127.0.0.1", port)
    coso.kill()
    coso.wait(5)
    wait_for(lambda: not answers("127.0.0.1", port), 10, "the orphaned broker to end")
