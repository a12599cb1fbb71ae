"""`coso serve --demo` on an empty directory: within a minute a post is on the bulletin and
in `coso log`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_demo_publishes_a_post_within_a_minute_and_the_log_shows_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
    env["COSO_SERVER__PORT"] = str(port)
    env["COLUMNS"] = "200"
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--demo"],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/bulletin", timeout=2).text
            except httpx.TransportError:
                page = ""
            if 'class="post"' in page:
                break
            time.sleep(0.5)
        assert 'class="post"' in page, log.read_text()
        assert "Bản tin cải cách hành chính — Xã" in page
        shown = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "log", "95/KH-UBND-DEMO"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert "đã đăng" in shown.stdout
        assert "bulletin:06040" in shown.stdout
    finally:
        serve.terminate()
        serve.wait(10)
    assert (tmp_path / "coso-data" / "coso.db").exists()


def test_serve_on_a_taken_port_stops_with_a_clear_message_before_starting(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
    env["COSO_SERVER__PORT"] = str(port)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "serve", "--demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"server.port = {port}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "coso-data").exists()  # nothing was started or written
