"""Hostile input on every inbound surface: generated bad input must be refused with a clear
message (or a 4xx), change nothing in the database, raise no traceback, and leave the
service able to deliver a legitimate broadcast afterwards.

The hypothesis profile is deterministic (`derandomize`) and small enough for the whole
package to run in a few minutes on two cores; `COSO_HYPOTHESIS_PROFILE=deep` runs more
examples for a longer local search."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [
    HealthCheck.function_scoped_fixture,  # one database and service per test, on purpose
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]
settings.register_profile(
    "hostile",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "deep",
    derandomize=False,
    deadline=None,
    max_examples=400,
    suppress_health_check=_QUIET,
)
settings.load_profile(os.environ.get("COSO_HYPOTHESIS_PROFILE", "hostile"))
