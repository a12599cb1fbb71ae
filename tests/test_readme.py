"""README's "Using it" runs as written: every `.venv/bin/coso …` line of its code block, in
order, in a fresh folder holding a copy of examples/, on a SQLite database of its own, the
MQTT broker on 127.0.0.1:1883 and a local server speaking Twilio's Messages API. Commands
that keep running (serve, player, players simulate) are started, seen up, then stopped."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

ROOT = Path(__file__).resolve().parents[1]
COSO = Path(sys.executable).parent / "coso"
BROKER = ("127.0.0.1", 1883)
# Commands that run until stopped, and what each prints once it is up.
LONG_RUNNING = {
    "coso serve": "coso serving on",
    "coso player ": "player(s) connecting to",
    "coso players simulate": "player(s) connecting to",
}
COMMAND_TIMEOUT = 120.0  # seconds, for one command that ends by itself
START_TIMEOUT = 60.0  # seconds, for one that keeps running to be up


def readme_commands() -> list[str]:
    """The `.venv/bin/coso …` lines of the code block under "## Using it", in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block, "README's 'Using it' section has no ```sh code block"
    return [line for line in block.group(1).splitlines() if line.startswith(".venv/bin/coso ")]


@dataclass
class Workspace:
    folder: Path
    env: dict[str, str]
    port: int


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        pytest.fail(
            "no MQTT broker answers on 127.0.0.1:1883, which README's commands name: "
            "start one (apt-get install mosquitto; mosquitto -d) and run the test again"
        )
    folder = tmp_path / "readme"
    shutil.copytree(ROOT / "examples", folder / "examples")
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "coso").symlink_to(COSO)
    port = free_port()
    with TwilioServer() as gateway:
        config = folder / "coso.toml"
        config.write_text(
            f"""\
[database]
url = "sqlite:///{folder / "coso-data" / "coso.db"}"

[server]
port = {port}
public_url = "http://127.0.0.1:{port}"

[channels.loudspeaker]
topic_prefix = "coso-readme-{uuid.uuid4().hex[:8]}/v1"
client_id = "coso-readme-{uuid.uuid4().hex[:8]}"

[channels.loudspeaker.broker]
url = "mqtt://127.0.0.1:1883"

[channels.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
base_url = "{gateway.url}"
sender = "UBND LSon"
status_callbacks = false
quiet_start = "00:00"
quiet_end = "00:00"
""",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
        env.update(COSO_CONFIG=str(config), COLUMNS="200", PYTHONUNBUFFERED="1")
        yield Workspace(folder, env, port)


def run_to_end(line: str, ws: Workspace) -> None:
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=ws.folder,
        env=ws.env,
        input="y\n",  # `sms send` asks before sending
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode == 0, f"{line}\nexited {done.returncode}\n{done.stdout}\n{done.stderr}"


def run_then_stop(line: str, up_text: str, ws: Workspace) -> None:
    log = ws.folder / f"long-running-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=ws.folder,
            env=ws.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its children
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not is_up(line, up_text, log, ws):
            text = log.read_text(errors="replace")
            assert process.poll() is None, f"{line}\nexited {process.returncode}\n{text}"
            assert time.monotonic() < deadline, f"{line}\nnot up after {START_TIMEOUT}s\n{text}"
            time.sleep(0.2)
        time.sleep(2)  # still running a moment later, with nothing gone wrong
        text = log.read_text(errors="replace")
        assert process.poll() is None, f"{line}\nexited {process.returncode}\n{text}"
        assert "error" not in text.lower() and "Traceback" not in text, f"{line}\n{text}"
        process.send_signal(signal.SIGTERM)  # as a service manager stops it
        code = process.wait(timeout=30)
        text = log.read_text(errors="replace")
        # uvicorn (coso serve) shuts down, then ends by the signal it caught, as is usual
        assert code in (0, -signal.SIGTERM), f"{line}\nexited {code} on SIGTERM\n{text}"
        assert "Traceback" not in text, f"{line}\n{text}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything it started and left behind
            os.killpg(process.pid, signal.SIGKILL)


def is_up(line: str, up_text: str, log: Path, ws: Workspace) -> bool:
    if up_text not in log.read_text(errors="replace"):
        return False
    if "coso serve" not in line:
        return True
    try:
        return httpx.get(f"http://127.0.0.1:{ws.port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_readme_lists_the_commands_it_shows() -> None:
    commands = readme_commands()
    assert len(commands) > 20
    assert commands[0].startswith(".venv/bin/coso init")
    for line in commands:
        assert "broker:1883" not in line, line


@pytest.mark.slow
def test_readme_using_it_runs_as_written(workspace: Workspace) -> None:
    for line in readme_commands():
        up_text = next((text for cmd, text in LONG_RUNNING.items() if cmd in line), None)
        if up_text is None:
            run_to_end(line, workspace)
        else:
            run_then_stop(line, up_text, workspace)
