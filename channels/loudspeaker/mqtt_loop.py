"""The network side of paho clients, run on one thread for any number of them: paho's
external event loop interface (socket callbacks, loop_read / loop_write / loop_misc) with a
selector, in place of a thread per client (loop_start).

What that saves: with loop_start, every message published from another thread writes a
byte to a socket pair to wake the client's thread, and each client's thread contends for
Python's one running thread with the others. Here a burst of publishes wakes the loop once,
and the work that follows a message (a player reacting to a command) can run on the same
thread. Like paho's own loop, it reconnects a client whose connection is lost, waiting
between attempts as the client's reconnect_delay_set says (coso sets 1 to 10 seconds).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
MISC_EVERY = 0.25  # seconds between keepalive checks of a client
MIN_DELAY, MAX_DELAY = 1.0, 10.0  # between reconnect attempts
ROUND_LATE = 15.0  # seconds without a finished round after which the loop counts as stuck


@dataclass(eq=False)
class _Conn:
    client: mqtt.Client
    wanted: bool = True  # keep it connected (False: paused, or being stopped)
    next_try: float = 0.0
    delay: float = MIN_DELAY
    sock: Any = None  # the socket registered with the selector
    mask: int = 0
    misc_at: float = 0.0
    closing_until: float | None = None  # stopping: its DISCONNECT is being written
    broken: bool = False  # its network step failed: connect it again at next_try
    done: threading.Event = field(default_factory=threading.Event)


class NetworkLoop:
    """Drives the network of the clients added to it, on one thread. Add a client after its
    connect_async(); the loop connects it. `tick`, when given, runs on the loop's thread
    at the start of each round and returns how many seconds it may wait (None: as long as
    it likes), so timed work shares the thread instead of needing its own. A round should
    stay well short of the clients' keepalive: the tick takes its work in turns.

    An exception in a client's network step (a paho callback included) is logged and that
    client connects again; one in a call or the tick is logged; the loop goes on either way.
    `alive` says whether it does."""

    def __init__(self, name: str, tick: Callable[[], float | None] | None = None) -> None:
        self.name = name
        self._tick = tick
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False
        self._conns: dict[mqtt.Client, _Conn] = {}
        self._calls: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.round_at = time.monotonic()  # when the last round finished (monotonic)

    # --- from any thread ---------------------------------------------------------------

    def add(self, client: mqtt.Client) -> mqtt.Client:
        client.on_socket_register_write = lambda *_: self.wake()
        client.on_socket_close = lambda _c, _u, sock: self._forget(client, sock)

        def add() -> None:
            self._conns[client] = _Conn(client)

        self.call(add)
        return client

    def start(self) -> NetworkLoop:
        self.round_at = time.monotonic()
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Its thread runs and finished a round within ROUND_LATE seconds (a round waits
        1 s at most when all is well)."""
        return (
            not self._stop
            and self._thread.is_alive()
            and time.monotonic() - self.round_at < ROUND_LATE
        )

    @property
    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def wake(self) -> None:
        """Make the loop look again (something to write, a call, a tick due sooner)."""
        if self.on_loop_thread or self._woken:
            return
        self._woken = True
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def call(self, fn: Callable[[], None], wait: float = 0.0) -> bool:
        """Run `fn` on the loop's thread (at once when already there); with `wait`, return
        whether it ran within that many seconds."""
        if self.on_loop_thread or not self._thread.is_alive():
            fn()
            return True
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        with self._lock:
            self._calls.append(run)
        self.wake()
        return done.wait(wait) if wait else True

    def pause(self, client: mqtt.Client) -> None:
        """Lose the connection abruptly, as a modem does (no DISCONNECT: the broker sends the
        last will), and stay offline until `resume`."""

        def pause() -> None:
            conn = self._conns[client]
            conn.wanted = False
            sock = client.socket()
            if sock is not None:
                self._unwatch(conn)
                sock.close()

        self.call(pause, wait=5)

    def resume(self, client: mqtt.Client) -> None:
        def resume() -> None:
            conn = self._conns[client]
            conn.wanted, conn.delay = True, MIN_DELAY
            self._connect(conn, time.monotonic())  # paho first lets go of the closed socket

        self.call(resume, wait=5)

    def disconnect(self, client: mqtt.Client, timeout: float = 5.0) -> None:
        """Send DISCONNECT (no last will) and stop driving the client once it is written."""
        conn_box: list[_Conn] = []

        def begin() -> None:
            conn = self._conns.get(client)
            if conn is None:
                return
            conn.wanted = False
            conn.closing_until = time.monotonic() + timeout
            conn_box.append(conn)
            client.disconnect()
            if client.socket() is None or not self._thread.is_alive():
                self._drop(conn)  # nothing will write the DISCONNECT

        self.call(begin, wait=timeout)
        if conn_box:
            conn_box[0].done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect every client, then end the thread."""
        for client in list(self._conns):
            self.disconnect(client, timeout)
        self._stop = True
        self.wake()
        if self._thread.is_alive() and not self.on_loop_thread:
            self._thread.join(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # --- on the loop's thread ------------------------------------------------------------

    def _forget(self, client: mqtt.Client, _sock: Any) -> None:
        """paho is closing this client's socket: stop watching it first."""
        conn = self._conns.get(client)
        if conn is not None:
            self._unwatch(conn)

    def _unwatch(self, conn: _Conn) -> None:
        if conn.sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn.sock)
            conn.sock, conn.mask = None, 0

    def _watch(self, conn: _Conn, sock: Any, mask: int) -> None:
        if sock.fileno() < 0:  # closed since paho handed it out (a link lost mid-round)
            self._unwatch(conn)
            return
        if conn.sock is not sock:
            self._unwatch(conn)
            self._selector.register(sock, mask, conn)
            conn.sock, conn.mask = sock, mask
        elif conn.mask != mask:
            self._selector.modify(sock, mask, conn)
            conn.mask = mask

    def _drop(self, conn: _Conn) -> None:
        self._unwatch(conn)
        self._conns.pop(conn.client, None)
        conn.done.set()

    def _connect(self, conn: _Conn, now: float) -> None:
        try:
            conn.client.reconnect()
            conn.delay = MIN_DELAY
        except (OSError, ValueError) as exc:
            log.info("%s: cannot reach the broker (%s); again in %.0fs", self.name, exc, conn.delay)
            conn.next_try = now + conn.delay
            conn.delay = min(conn.delay * 2, MAX_DELAY)

    def _break(self, conn: _Conn, what: str) -> None:
        """A client's network step raised: log it, drop its connection (paho may have read
        half a packet) and connect it again after the usual delay."""
        log.exception("%s: %s failed; connecting again in %.0fs", self.name, what, conn.delay)
        self._unwatch(conn)
        sock = conn.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        conn.broken = True
        conn.next_try = time.monotonic() + conn.delay
        conn.delay = min(conn.delay * 2, MAX_DELAY)

    def _run(self) -> None:
        while not self._stop:
            try:
                self._round()
                self.round_at = time.monotonic()
            except Exception:  # not one client's: the loop goes on, a little later
                log.exception("%s: a network loop round failed", self.name)
                time.sleep(0.1)

    def _round(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for fn in calls:
            try:
                fn()
            except Exception:
                log.exception("%s: a call on the network loop failed", self.name)
        timeout = 1.0
        if self._tick is not None:  # first: what it publishes is written in this round
            try:
                wait = self._tick()
            except Exception:
                log.exception("%s: the timed work on the network loop failed", self.name)
                wait = None
            if wait is not None:
                timeout = min(timeout, wait)
        now = time.monotonic()
        for conn in list(self._conns.values()):
            client = conn.client
            sock = client.socket()
            if conn.closing_until is not None:
                if sock is None or now > conn.closing_until:
                    self._drop(conn)
                    continue
            elif not conn.wanted:
                continue  # paused
            elif sock is None or conn.broken:
                if now < conn.next_try:
                    timeout = min(timeout, conn.next_try - now)
                    continue
                conn.broken = False
                self._connect(conn, now)
                sock = client.socket()
                if sock is None:
                    continue
            mask = selectors.EVENT_READ
            if client.want_write():
                mask |= selectors.EVENT_WRITE
            self._watch(conn, sock, mask)
            if now >= conn.misc_at:
                conn.misc_at = now + MISC_EVERY
                try:
                    client.loop_misc()
                except Exception:
                    self._break(conn, "keepalive")
        # A wake-up is a byte on the wake socket: select returns at once while one waits.
        for key, mask in self._selector.select(max(0.0, timeout)):
            conn = key.data
            if conn is None:
                # Read, then clear: cleared first, a wake() between the two would leave the
                # flag set with its byte read, and every later wake() would send none (the
                # loop went round without waiting, a CPU's worth, until the next byte).
                with contextlib.suppress(BlockingIOError, OSError):
                    self._wake_r.recv(4096)
                self._woken = False
                continue
            try:
                self._io(conn.client, mask)
            except Exception:
                self._break(conn, "reading or writing")

    @staticmethod
    def _io(client: mqtt.Client, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            client.loop_read()  # runs the client's callbacks for what it read
            sock = client.socket()
            while sock is not None and getattr(sock, "pending", lambda: 0)():
                client.loop_read()  # TLS: bytes already decrypted wait in the socket
                sock = client.socket()
        # What the read produced (acknowledgements of the messages read) goes out now, not
        # after the other clients' reads.
        if (mask & selectors.EVENT_WRITE or client.want_write()) and client.socket() is not None:
            client.loop_write()
