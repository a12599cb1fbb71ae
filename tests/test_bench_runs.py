"""The benchmarks still run (a change to the plan model once broke the fan-out benchmark at
its first step without a test noticing): at a tiny scale, each prints both figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run_bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the project's root; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_the_fan_out_benchmark_prints_coso_next_to_the_raw_baseline() -> None:
    done = run_bench("bench.fanout", "--endpoints", "300", timeout=300)
    assert "coso fan-out" in done.stdout and "raw executemany" in done.stdout
    assert "ratio (coso time / raw time)" in done.stdout


@pytest.mark.slow
def test_the_report_benchmark_prints_coso_next_to_the_hand_written_query() -> None:
    done = run_bench("bench.report", "--rows", "20000", timeout=300)
    assert "outcome counts agree with the log" in done.stdout
    assert "figures agree" in done.stdout and "coso report" in done.stdout
    assert "ratio (coso time / hand-written time)" in done.stdout


@pytest.mark.slow
def test_the_timer_benchmark_prints_coso_next_to_apscheduler_alone() -> None:
    done = run_bench(
        "bench.timer", "--schedules", "60", "--window", "10", "--lead", "20", timeout=400
    )
    assert "coso start-up: process start to a loaded timer" in done.stdout
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line}
    assert lines["coso"][-1] == "0" and lines["APScheduler"][-1] == "0"  # no slot missing
    assert "ratio (coso / APS)" in done.stdout


@pytest.mark.slow
def test_the_emergency_benchmark_prints_each_channel_next_to_its_normal_fan_out() -> None:
    done = run_bench(
        "bench.emergency",
        "--players",
        "4",
        "--sms",
        "30",
        "--boards",
        "2",
        "--sms-rate",
        "30",
        timeout=400,
    )
    assert "floor for 30 SMS = 1.0 s" in done.stdout
    rows = {line.split(":")[0] for line in done.stdout.splitlines() if "all reached" in line}
    assert rows == {"players", "SMS", "boards", "bulletin"}
    assert "emergency / normal" in done.stdout
    assert "counts: every endpoint reached exactly once, by both" in done.stdout


@pytest.mark.slow
def test_the_scale_benchmark_prints_one_against_two_dispatchers_and_no_duplicates() -> None:
    from tests.conftest import _pg_answers

    if not _pg_answers():
        pytest.fail(
            "PostgreSQL is not answering on 127.0.0.1:5432: bench.scale runs on it "
            "(install postgresql and start it with trust auth for local connections)"
        )
    done = run_bench(
        "bench.scale", "--dispatchers", "1,2", "--players", "20", "--recipients", "40", timeout=400
    )
    runs = [line for line in done.stdout.splitlines() if "dispatcher(s): 60 deliveries" in line]
    assert len(runs) == 2 and all("duplicates 0, lost 0" in line for line in runs), done.stdout
    assert "2 against 1 dispatcher:" in done.stdout


@pytest.mark.slow
def test_the_memory_benchmark_prints_the_peak_in_flight_next_to_idle_and_the_goal() -> None:
    done = run_bench(
        "bench.memory",
        "--players",
        "30",
        "--sms",
        "30",
        "--sms-rate",
        "2",
        "--window",
        "8",
        "--settle",
        "1",
        timeout=300,
    )
    assert "deliveries created: 60 of 60" in done.stdout
    assert "idle coso serve, 60 endpoints, all its processes:" in done.stdout
    assert "in flight, 60 deliveries: peak" in done.stdout
    # At 2 SMS a second, some are still to go when the window ends: they were in flight.
    sms = next(line for line in done.stdout.splitlines() if "sms at the end:" in line)
    assert "pending" in sms or "sending" in sms or "retry_wait" in sms
    assert "goal <= 150 MB: idle" in done.stdout
