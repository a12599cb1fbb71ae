"""The benchmarks still run (a change to the plan model once broke the fan-out benchmark at
its first step without a test noticing): at a tiny scale, each prints both figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_the_fan_out_benchmark_prints_coso_next_to_the_raw_baseline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--endpoints", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "coso fan-out" in done.stdout and "raw executemany" in done.stdout
    assert "ratio (coso time / raw time)" in done.stdout


@pytest.mark.slow
def test_the_report_benchmark_prints_coso_next_to_the_hand_written_query() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.report", "--rows", "20000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "outcome counts agree with the log" in done.stdout
    assert "figures agree" in done.stdout and "coso report" in done.stdout
    assert "ratio (coso time / hand-written time)" in done.stdout
