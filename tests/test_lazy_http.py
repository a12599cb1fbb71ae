"""httpx (about 3 MB of a process with what it imports) is loaded by a `coso serve` that
posts over HTTP, at its first request, and not by one that never does: the memory goal of
`bench.memory` counts on it."""

from __future__ import annotations

import subprocess
import sys

from coso.http_client import LazyClient

SERVE_MODULES = (
    "dispatcher.service",
    "dispatcher.cli.serve",
    "channels.web.channel",
    "channels.boards.channel",
    "channels.boards.huidu",
    "channels.sms.channel",
    "channels.loudspeaker.channel",
)


def test_serve_and_its_channels_import_no_http_client_library() -> None:
    code = (
        f"import sys\nfor m in {SERVE_MODULES!r}: __import__(m)\n"
        "print(sorted(m for m in ('httpx', 'httpcore', 'h11') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_client_is_made_at_the_first_request_and_kept() -> None:
    lazy = LazyClient(timeout=3)
    first = lazy.client
    assert lazy.client is first
    assert first.timeout.read == 3
    lazy.close()
    assert first.is_closed
