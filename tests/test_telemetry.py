"""OpenTelemetry: coso's web app traces its requests when a tracer provider was set before
it started (as `opentelemetry-instrument` does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.web.telemetry import telemetry_config

ROOT = Path(__file__).resolve().parent.parent

TRACED = """
import sys
from opentelemetry import trace

spans = []


class Tracer(trace.NoOpTracer):
    def start_span(self, name, *args, **kwargs):
        spans.append((name, (kwargs.get("attributes") or {}).get("url.path")))
        return super().start_span(name, *args, **kwargs)


class Provider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return Tracer()


trace.set_tracer_provider(Provider())

from starlette.testclient import TestClient

from coso.config import load_settings
from coso.setup import open_database
from dispatcher.web.app import create_app

settings = load_settings(None, database={"url": f"sqlite:///{sys.argv[1]}/coso.db"})
with TestClient(create_app(open_database(settings), settings)) as web:
    assert web.get("/healthz").status_code == 200
print(sorted({path for _, path in spans if path}))
"""


def traced_paths(tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRACED, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_requests_are_traced_when_a_tracer_provider_was_set_before_the_app(
    tmp_path: Path,
) -> None:
    assert traced_paths(tmp_path) == "['/healthz']"


def test_fastapi_setting_up_the_providers_itself_keeps_its_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With FASTAPI_OTEL_AUTO_CONFIGURE=true FastAPI adds the exporters as the app starts,
    after the app is made: nothing is turned off before it can."""
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert telemetry_config() == {}
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "")
    assert telemetry_config() == {"tracing": False, "metrics": False, "logs": False}
