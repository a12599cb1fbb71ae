"""Scale-out over PostgreSQL: one slot (a broadcast to every player and a text to every
recipient) through one dispatcher, then through two, in the same run, each on a new
database with the web app apart (`coso serve --role web` + `--role dispatcher --name dN`,
as docs/operations.md deploys them; tests/scale_rig.py). Prints the time from the slot to
the last play and the last text accepted, the throughput, the ratio of two against one,
and what the far end saw twice (must be 0).

    python -m bench.scale --dispatchers 1,2 --players 10000 --recipients 20000
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--broker mqtt://...]

The players (`tests/play_recorder.py`) and the gateway (`tests/twilio_server.py`) run in
processes of their own; without --broker a mosquitto is started on a free port.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.fanout import scratch_database
from channels.loudspeaker.mqtt import LocalBroker
from tests.scale_rig import Run, ScaleRig

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL = 1.7  # two dispatchers against one, on a machine with the cores for it
CORES_FOR_TWO = 4  # two dispatchers (each with its events process), PostgreSQL, the broker


def counts(text: str) -> list[int]:
    try:
        found = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise SystemExit(f"--dispatchers = {text!r}: numbers separated by commas (1,2)") from None
    if not found or any(n < 1 for n in found):
        raise SystemExit(f"--dispatchers = {text!r}: one dispatcher at least in each run")
    return found


def one_run(server: str, broker: str, dispatchers: int, players: int, recipients: int) -> Run:
    with (
        scratch_database(server) as url,
        tempfile.TemporaryDirectory(prefix=f"coso-bench-scale-{dispatchers}-") as tmp,
        ScaleRig(Path(tmp), url, broker, players, recipients, progress=_say) as rig,
    ):
        return rig.run(dispatchers)


def _say(line: str) -> None:
    print(f"  … {line}", file=sys.stderr, flush=True)


def report(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        split = "; ".join(
            f"{name}: " + ", ".join(f"{n:,} {channel}" for channel, n in sorted(claimed.items()))
            for name, claimed in sorted(run.claimed.items())
        )
        lines.append(
            f"{run.dispatchers} dispatcher(s): {run.players + run.recipients:,} deliveries in "
            f"{run.seconds:.2f} s = {run.per_second:,.0f}/s (every command and text out "
            f"{run.out_seconds:.2f} s, every play recorded {run.speaker_seconds:.2f} s, last "
            f"text {run.sms_seconds:.2f} s after the slot); duplicates {run.duplicates}, "
            f"lost {run.lost}; claimed: {split}"
        )
        unsettled = {
            k: n for k, n in run.states.items() if k not in ("loudspeaker:played", "sms:sent")
        }
        if unsettled:
            lines.append(f"    deliveries not played / sent: {unsettled}")
        lines += [f"    {note}" for note in run.notes]
    by_count = {run.dispatchers: run for run in runs}
    if 1 in by_count:
        for n, run in sorted(by_count.items()):
            if n > 1 and by_count[1].per_second:
                ratio = run.per_second / by_count[1].per_second
                lines.append(f"{n} against 1 dispatcher: {ratio:.2f}x (goal for 2: ≥ {GOAL}x)")
    cpus = os.cpu_count() or 1
    if cpus < CORES_FOR_TWO and any(n > 1 for n in by_count):
        lines.append(
            f"this machine has {cpus} CPU(s): PostgreSQL, the broker, the gateway, the "
            "simulated players and each dispatcher (with its events process) share them, so "
            "a second dispatcher brings no CPU of its own, only more processes to share "
            f"them; the ratio measures that contention, not scale-out ({CORES_FOR_TWO} cores "
            "at least for the goal)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispatchers", default="1,2", help="runs, e.g. 1,2")
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument(
        "--database-url", default=DEFAULT_SERVER, help="a PostgreSQL server (scratch databases)"
    )
    parser.add_argument("--broker", default="", help="default: a mosquitto on a free port")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgresql", "postgres")):
        raise SystemExit(
            f"--database-url = {args.database_url!r}: scale-out needs PostgreSQL "
            "(advisory locks, SKIP LOCKED)"
        )
    runs_of = counts(args.dispatchers)
    broker = None if args.broker else LocalBroker(prefer="mosquitto").start()
    url = args.broker or broker.url  # type: ignore[union-attr]
    try:
        runs = [one_run(args.database_url, url, n, args.players, args.recipients) for n in runs_of]
    finally:
        if broker is not None:
            broker.stop()
    print(f"broker: {url}; database server: {args.database_url}; {os.cpu_count()} CPU(s)")
    for line in report(runs):
        print(line)
    if any(run.duplicates or run.lost for run in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
