"""MQTT plumbing shared by coso and the reference player: broker addresses, paho clients
(MQTT 5 where the broker speaks it, else 3.1.1), and a broker on loopback when none is
configured (`mosquitto` from PATH, else an embedded amqtt broker)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

from channels.loudspeaker.mqtt_client import LeanClient
from channels.loudspeaker.mqtt_loop import NetworkLoop
from channels.loudspeaker.settings import BrokerSettings
from coso.errors import InputError

log = logging.getLogger(__name__)
SESSION_EXPIRY = 7 * 24 * 3600  # a player's queued commands survive a week offline (MQTT 5)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str
    password: str

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str, username: str = "", password: str = "") -> BrokerAddress:
    """mqtt://[user:pass@]host[:1883] or mqtts://…[:8883]; the error names the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise InputError("broker.url", url, "not like mqtt://host:1883 or mqtts://host:8883")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise InputError("broker.url", url, "the port is not a number") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else username,
        password=unquote(parts.password) if parts.password else password,
    )


_protocols: dict[tuple[str, int], int] = {}


def broker_protocol(address: BrokerAddress, settings: BrokerSettings) -> int:
    """MQTTv5 when the broker accepts it, else MQTTv311 (also when it does not answer)."""
    return probe_protocol(address, settings) or mqtt.MQTTv311


def probe_protocol(
    address: BrokerAddress, settings: BrokerSettings, timeout: float = 5.0
) -> int | None:
    """MQTTv5 when the broker accepts it, else MQTTv311; None when it does not answer (then
    asked again next time: a broker that is away says nothing of what it speaks)."""
    key = (address.host, address.port)
    if key not in _protocols:
        probe = new_client(f"coso-probe-{time.monotonic_ns()}", address, settings, mqtt.MQTTv5)
        probe.connect_timeout = timeout
        reason = None
        answered = False
        try:
            reason = connect_and_wait(probe, address, 10, timeout)
            answered = True
        except OSError:
            pass
        finally:
            probe.loop_stop()
            with contextlib.suppress(Exception):
                probe.disconnect()
        if not answered:
            return None
        ok = reason is not None and not reason.is_failure
        _protocols[key] = mqtt.MQTTv5 if ok else mqtt.MQTTv311
    return _protocols[key]


def connect_and_wait(
    client: mqtt.Client, address: BrokerAddress, keepalive: int, timeout: float
) -> Any:
    """Connect, start the client's network loop and wait for the broker's CONNACK: its
    reason code, or None when none came within `timeout`. OSError: unreachable."""
    answer: list[Any] = []
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        answer.append(reason)
        done.set()

    client.on_connect = on_connect
    client.connect(address.host, address.port, keepalive)
    client.loop_start()
    done.wait(timeout)
    return answer[0] if answer else None


def new_client(
    client_id: str,
    address: BrokerAddress,
    settings: BrokerSettings,
    protocol: int,
    *,
    persistent: bool = False,
) -> LeanClient:
    """A paho client (reading and writing in bulk) set up with credentials and TLS; not yet
    connected."""
    client = LeanClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=(not persistent) if protocol != mqtt.MQTTv5 else None,
    )
    if address.username:
        client.username_pw_set(address.username, address.password or None)
    if address.tls:
        context = ssl.create_default_context(cafile=settings.ca_file or None)
        if settings.cert_file:
            context.load_cert_chain(settings.cert_file, settings.key_file or None)
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect_properties(
    protocol: int, persistent: bool, session_expiry: int | None = None
) -> Properties | None:
    """MQTT 5: how long the broker keeps the session after a disconnection (a persistent
    one: `session_expiry` seconds, by default a week)."""
    if protocol != mqtt.MQTTv5:
        return None
    props = Properties(PacketTypes.CONNECT)
    expiry = SESSION_EXPIRY if session_expiry is None else session_expiry
    props.SessionExpiryInterval = expiry if persistent else 0
    return props


def connect_async(
    client: mqtt.Client,
    address: BrokerAddress,
    keepalive: int,
    protocol: int,
    persistent: bool,
    loop: NetworkLoop | None = None,
    session_expiry: int | None = None,
) -> None:
    """Start connecting in the background, on `loop` (else a thread of the client's own);
    either reconnects by itself after a drop."""
    kwargs: dict[str, Any] = {"keepalive": keepalive}
    if protocol == mqtt.MQTTv5:
        kwargs["clean_start"] = not persistent
        kwargs["properties"] = connect_properties(protocol, persistent, session_expiry)
    client.connect_async(address.host, address.port, **kwargs)
    if loop is not None:
        loop.add(client)
    else:
        client.loop_start()


class PackedProperties(Properties):
    """MQTT 5 PUBLISH properties already encoded: paho only calls pack() on them, and its
    own Properties spend more time checking names than sending the command."""

    def __init__(self, packed: bytes) -> None:  # no super().__init__: nothing to check
        object.__setattr__(self, "packed", packed)

    def pack(self) -> bytes:
        return self.packed  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"PackedProperties({self.packed!r})"


def publish_properties(
    response_topic: str, correlation: bytes, expiry_seconds: int | None
) -> PackedProperties:
    """Response Topic (0x08), Correlation Data (0x09) and Message Expiry Interval (0x02)
    encoded as the MQTT 5 specification (2.2.2) lays out a PUBLISH's properties."""
    topic = response_topic.encode()
    body = b"\x08" + len(topic).to_bytes(2, "big") + topic
    body += b"\x09" + len(correlation).to_bytes(2, "big") + correlation
    if expiry_seconds is not None:
        body = b"\x02" + expiry_seconds.to_bytes(4, "big") + body
    return PackedProperties(VariableByteIntegers.encode(len(body)) + body)


class PubackWindow:
    """At most `size` QoS 1 messages of one client awaiting the broker's PUBACK. paho keeps
    such a bound too, but on every PUBACK it walks all the messages it holds, so a client
    that lets paho queue thousands spends its time there; here paho never queues, and its
    own bound can be off (`max_inflight_messages_set(0)`)."""

    def __init__(self, size: int) -> None:
        self._room = threading.Semaphore(size)
        self._lock = threading.Lock()
        self._awaiting: set[int] = set()
        self._early: set[int] = set()  # acknowledged before publish() returned its mid

    def publish(
        self, client: mqtt.Client, topic: str, payload: bytes, wait: float, **kwargs: Any
    ) -> mqtt.MQTTMessageInfo | None:
        """Publish at QoS 1 once there is room (None: no room within `wait` seconds)."""
        if not self._room.acquire(timeout=max(wait, 0.0)):
            return None
        info = client.publish(topic, payload, qos=1, **kwargs)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._room.release()  # dropped; NO_CONN: paho keeps it and sends it on reconnect
            return info
        with self._lock:  # never held while calling paho (which holds its own lock here)
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._room.release()
            else:
                self._awaiting.add(info.mid)
        return info

    def acknowledged(self, mid: int) -> None:
        """From the client's on_publish: the broker has message `mid`."""
        with self._lock:
            if mid in self._awaiting:
                self._awaiting.discard(mid)
                self._room.release()
            else:
                self._early.add(mid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent_hook() -> Any:
    """For the broker's process before exec: end it when coso ends, even killed (SIGKILL),
    instead of leaving a broker on a port nobody knows (Linux: PR_SET_PDEATHSIG). Looked up
    before the fork, so the child only makes the call."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)


def die_with_parent() -> None:
    """For a helper process of coso's: end it when its parent ends, even killed (Linux)."""
    hook = _die_with_parent_hook()
    if hook is not None:
        hook()


DEFAULT_OPTIONS = (
    "allow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\n"
)


class LocalBroker:
    """A broker on loopback for `coso serve` without a configured one, and for tests:
    `mosquitto` when installed (MQTT 5), else amqtt embedded in a thread (MQTT 3.1.1)."""

    def __init__(self, port: int | None = None, prefer: str = "auto", options: str = "") -> None:
        """`options`: mosquitto configuration lines for its listener (TLS, passwords, ACL),
        instead of the defaults (anonymous, queues sized for bursts of events)."""
        self.port = port or free_port()
        self._options = options or DEFAULT_OPTIONS
        self.kind = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="coso-broker-")
        self._prefer = prefer

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        binary = mosquitto_path() if self._prefer in ("auto", "mosquitto") else None
        if binary:
            self._start_mosquitto(binary)
        elif self._prefer == "mosquitto":
            raise InputError("broker", "mosquitto", "not installed: apt-get install mosquitto")
        else:
            self._start_amqtt()
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", self.port, 0.2):
            if time.monotonic() > deadline or self._exited():
                raise InputError(
                    "broker", self.url, f"{self.kind} did not start: {self._log_tail()}"
                )
            time.sleep(0.01)
        log.info("started %s on %s", self.kind, self.url)
        return self

    def _start_mosquitto(self, binary: str) -> None:
        config = Path(self._dir.name) / "mosquitto.conf"
        # As this user: mosquitto started by root would switch to user `mosquitto`, who may
        # not read the files it is given, and which would undo _die_with_parent_hook.
        config.write_text(
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{self._options}"
        )
        self._process = subprocess.Popen(
            [binary, "-c", str(config)],
            preexec_fn=_die_with_parent_hook(),
            stdout=subprocess.DEVNULL,
            stderr=(Path(self._dir.name) / "mosquitto.log").open("wb"),
        )
        self.kind = "mosquitto"

    def _exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def _log_tail(self) -> str:
        log_file = Path(self._dir.name) / "mosquitto.log"
        lines = (
            log_file.read_text(errors="replace").strip().splitlines() if log_file.exists() else []
        )
        return " / ".join(lines[-3:]) or "no answer within 10 s"

    def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        ready = threading.Event()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {}},
        }

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                broker = Broker(config)
                await broker.start()
                ready.set()
                self._stopped = asyncio.Event()
                await self._stopped.wait()
                await broker.shutdown()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(10)
        self.kind = "amqtt"

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
            self._loop = None

    def kill(self) -> None:
        """Stop abruptly (tests: a broker crash)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None
        else:
            self.stop()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
