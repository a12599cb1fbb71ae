"""`coso serve` as deployed, for the browser tests: its own process, settings file, SQLite
database and media folder on a free port, and the command line on the same settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx

from channels.loudspeaker.mqtt import answers
from tests.fault_scenarios import common_settings
from tests.fault_services import ROOT, serve, stop, wait_until
from tests.hostile.strategies import toml_document

START_TIMEOUT = 60.0  # seconds for /healthz to answer (two cores, several test processes)
CLI_TIMEOUT = 120.0  # seconds for one `coso …` command


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, table by table (a value in `extra` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _loudspeakers() -> dict[str, Any]:
    """The machine's broker when it answers, else none named (`coso serve` then starts one
    on loopback); a topic prefix and client id of its own either way, so that servers of
    several tests on one broker never take each other's session."""
    tag = uuid.uuid4().hex[:8]
    broker = "mqtt://127.0.0.1:1883" if answers("127.0.0.1", 1883) else ""
    return {
        "topic_prefix": f"coso-browser-{tag}/v1",
        "client_id": f"coso-browser-{tag}",
        "broker": {"url": broker},
    }


class CosoServer:
    """One `coso serve` and its files under `work`. Not started until `start()`, so a test can
    prepare the database through `cli()` first; `stop()` is safe to call twice."""

    def __init__(
        self,
        work: Path,
        template: Path,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.env = env or {}  # COSO_* variables (secrets, say) for the server and cli()
        database = work / "coso.db"
        shutil.copy(template, database)  # migrated, units loaded: saves seconds per server
        base = tomllib.loads(common_settings(work, f"sqlite:///{database}"))
        base = merged(base, {"channels": {"loudspeaker": _loudspeakers()}})
        self.settings = merged(base, settings or {})
        self.config = work / "coso.toml"
        self.config.write_text(toml_document(self.settings), encoding="utf-8")
        self.url: str = self.settings["server"]["public_url"]
        self.log = work / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CosoServer:
        self.process = serve(self.config, self.log, self.env)
        wait_until(self._healthy, START_TIMEOUT, f"coso serve at {self.url}/healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"coso serve ended ({self.process.returncode}):\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """`coso --config <this server's settings> ARGS…` in a process of its own; its output.
        A non-zero exit fails the test with the output, unless `check=False`."""
        done = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "--config", str(self.config), *args],
            cwd=ROOT,
            env={**_without_coso_env(), **self.env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise AssertionError(f"coso {' '.join(args)} exited {done.returncode}:\n{output}")
        return output

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _without_coso_env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COSO_")},
        "COLUMNS": "200",  # rich tables unwrapped, for tests that read them
    }
