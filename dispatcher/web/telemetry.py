"""FastAPI's OpenTelemetry, on for what has a provider when the app is made.

FastAPI asks on every request whether a global tracer, meter or logger provider has been
set, reading the process environment each time: a fifth of the web thread's work on a
status callback. The question is asked here once instead. A provider is set before coso
starts (`opentelemetry-instrument coso serve`, or the OTEL_PYTHON_*_PROVIDER environment),
so the answer does not change while it runs; FastAPI setting them up itself as the app
starts (FASTAPI_OTEL_AUTO_CONFIGURE=true) keeps FastAPI's own defaults."""

from __future__ import annotations

import os
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, metrics, trace

# OpenTelemetry's stand-ins until a provider is set (its API has no "is set" query).
UNSET = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def is_set(provider: Any) -> bool:
    cls = type(provider)
    return (cls.__module__, cls.__name__) not in UNSET


def telemetry_config() -> TelemetryConfig:
    """Tracing, metrics and logs each on when its provider is set now; FastAPI's own
    defaults when it is to set the providers up itself (FASTAPI_OTEL_AUTO_CONFIGURE=true),
    which it does as the app starts."""
    if os.getenv("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}
    return {
        "tracing": is_set(trace.get_tracer_provider()),
        "metrics": is_set(metrics.get_meter_provider()),
        "logs": is_set(_logs.get_logger_provider()),
    }
