"""What coso costs before it does anything: `coso --help` time, and the memory of an idle
`coso serve --demo` over all its processes; each next to a raw baseline from the same run.

    python -m bench.footprint [--runs 15] [--settle 20]

`--help`: the median wall time of `coso --help` over --runs runs, next to the same number of
runs of a bare Typer app with one command (what any Typer command line costs) and of
`python -c pass` (the interpreter alone). Goal: at most 0.3 s.

Idle serve: `coso serve --demo` on SQLite in a new folder (its own MQTT broker, three
simulated players on threads of its own process, player events in that process too below
500 players), left --settle seconds after it serves; the resident memory of the command and
every process it started (a player-events process when there is one; the broker is listed
but not counted), next to an idle `python -c` that imports nothing. Goal: at most 150 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

COSO = str(Path(sys.executable).parent / "coso")
BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str) -> None:
    print(name)
app()
"""
HELP_GOAL = 0.3  # seconds
RSS_GOAL = 150  # MB


def wall(command: list[str], runs: int) -> float:
    """Median seconds of `command` over `runs` runs (output discarded)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(root: psutil.Process, leave_out: tuple[str, ...] = ()) -> tuple[float, list[str]]:
    """Resident memory of `root` and every process below it, less those named in
    `leave_out`; and what each counted process is."""
    total, seen = 0.0, []
    for proc in [root, *root.children(recursive=True)]:
        try:
            mb = proc.memory_info().rss / 2**20
            what = f"{proc.pid} {' '.join(proc.cmdline())[-70:]}: {mb:.0f} MB"
            if proc.name() in leave_out:
                seen.append(f"{what} (not counted)")
                continue
            total += mb
            seen.append(what)
        except psutil.NoSuchProcess:
            continue
    return total, seen


def wait_healthy(serve: subprocess.Popen[bytes], port: int, within: float, what: str) -> float:
    """Seconds until `/healthz` on `port` answers that every part is well."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if serve.poll() is not None:
            raise SystemExit(f"{what} ended early (exit code {serve.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer within {within:.0f} s")


def idle_serve(settle: float) -> tuple[float, list[str]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COSO_")}
        env["COSO_SERVER__PORT"] = str(port)
        serve = subprocess.Popen(
            [COSO, "serve", "--demo"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(serve, port, 120, "coso serve --demo")
            time.sleep(settle)
            return rss_mb(psutil.Process(serve.pid), leave_out=("mosquitto",))
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()


def idle_python() -> float:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        return psutil.Process(sleeper.pid).memory_info().rss / 2**20
    finally:
        sleeper.kill()
        sleeper.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args()

    coso_help = wall([COSO, "--help"], args.runs)
    bare = wall([sys.executable, "-c", BARE_TYPER, "--help"], args.runs)
    interpreter = wall([sys.executable, "-c", "pass"], args.runs)
    verdict = "met" if coso_help <= HELP_GOAL else "NOT met"
    print(f"coso --help (median of {args.runs}): {coso_help:.3f} s")
    print(f"  raw: a bare Typer app --help {bare:.3f} s, python -c pass {interpreter:.3f} s")
    print(f"  coso / bare Typer: {coso_help / bare:.2f}x; goal <= {HELP_GOAL} s: {verdict}")

    total, parts = idle_serve(args.settle)
    raw = idle_python()
    verdict = "met" if total <= RSS_GOAL else "NOT met"
    print(f"idle coso serve --demo, all its processes: {total:.0f} MB RSS")
    for part in parts:
        print(f"  {part}")
    print(f"  raw: an idle python process {raw:.0f} MB; goal <= {RSS_GOAL} MB: {verdict}")


if __name__ == "__main__":
    main()
