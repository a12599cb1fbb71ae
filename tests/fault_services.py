"""Services the fault tests break on purpose, each of their own on a free loopback port: a
PostgreSQL cluster (initdb/pg_ctl), a mosquitto broker, `coso serve` as a real process, and
players that record every play in a process of their own (they outlive coso's kill)."""

from __future__ import annotations

import contextlib
import getpass
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_OPTIONS = (
    "allow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\n"
)


class MissingTool(RuntimeError):
    """A program the fault tests need is not installed: the message says what to install."""


def need(program: str, package: str) -> str:
    """`program` on PATH or, for PostgreSQL's server programs, where Debian installs them."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which(program) or shutil.which(program, path=os.pathsep.join(debian))
    if not found:
        raise MissingTool(f"`{program}` is not on PATH: install {package} to run the fault tests")
    return found


def wait_until(predicate: Any, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder, on a free port, that can be stopped and
    started again (never the machine's shared server)."""

    def __init__(self) -> None:
        self.initdb = need("initdb", "PostgreSQL's server binaries (apt-get install postgresql)")
        self.pg_ctl = need("pg_ctl", "PostgreSQL's server binaries (apt-get install postgresql)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="coso-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        # PostgreSQL refuses to run as root: then it runs as the `postgres` user.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = [need("runuser", "util-linux"), "-u", "postgres", "--"]
            try:
                shutil.chown(self.dir, "postgres")
            except LookupError as exc:
                raise MissingTool(
                    "running as root, PostgreSQL needs a `postgres` user: install postgresql "
                    "(apt-get install postgresql) or run the fault tests as another user"
                ) from exc

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> OwnPostgres:
        try:
            subprocess.run(
                [*self.as_user, self.initdb, "-D", str(self.data), "-U", "postgres", "-A",
                 "trust", "-E", "UTF8", "--no-sync"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self._env(),
            )  # fmt: skip
            self.start()
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.dir, ignore_errors=True)
            said = (exc.stderr or b"").decode(errors="replace").strip()
            raise RuntimeError(f"could not start PostgreSQL ({exc.cmd[-1]}): {said}") from exc
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C.UTF-8"}

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "start"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self._env(),
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast`: connections are cut, the server shuts down cleanly; `immediate`: as a
        crash (recovery from the write-ahead log at the next start)."""
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._env(),
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)


class Mosquitto:
    """A mosquitto of our own on a fixed free port: killed with SIGKILL and started again on
    the same port, as a broker host that crashes and comes back (no persistence: whatever
    it held in memory is gone)."""

    def __init__(self) -> None:
        self.binary = need("mosquitto", "mosquitto (apt-get install mosquitto)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="coso-faults-mqtt-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> Mosquitto:
        config = self.dir / "mosquitto.conf"
        config.write_text(
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{MOSQUITTO_OPTIONS}"
        )
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "mosquitto.log").open("ab"),
        )
        wait_until(lambda: _answers(self.port), 15, f"mosquitto on port {self.port}")
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None


def serve(
    config: Path,
    log: Path,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`coso serve` with this configuration file, as deployed (its own process); `args`:
    more options (`--role dispatcher --name d1 --port 8181`)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COSO_")},
        "COSO_CONFIG": str(config),  # its [server] port is the one players were given
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to `coso serve` and every process it started (its events process)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(15)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill9(process)


class PlayRecorder:
    """`count` reference players (ids `id_format` from n = 1) in a process of their own, with
    sinks that note every clip they start; `plays()` reads what they played so far."""

    def __init__(self, config: Path, broker_url: str, id_format: str, count: int, work: Path):
        self.out = work / "plays.json"
        self.log = work / "players.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.play_recorder", "--config", str(config),
             "--broker", broker_url, "--id-format", id_format, "--count", str(count),
             "--out", str(self.out), "--data", str(work / "players")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log.open("ab"), text=True,
        )  # fmt: skip

    def __enter__(self) -> PlayRecorder:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"players did not start: {self.log.read_text()[-2000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def plays(self) -> dict[str, dict[str, int]]:
        """player → media file → how many times it started playing it."""
        if self.process.poll() is not None:
            raise RuntimeError(f"the players' process ended: {self.log.read_text()[-2000:]}")
        try:
            return json.loads(self.out.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
