"""Fault trials at full scale, counted at the far end (docs/reliability.md):

- `coso serve` (its own process, on PostgreSQL) SIGKILLed at a random point of a broadcast
  to --players simulated players (in a process of their own: they outlive the kill), then
  started again; each player's plays counted, --trials times;
- the broker (a mosquitto of its own) SIGKILLed mid fan-out and started again on the same
  port --broker-down seconds later, its memory lost, --broker-trials times;
- PostgreSQL (a cluster of its own, never the machine's) stopped mid SMS blast for
  --db-down seconds, messages counted at a local Twilio-compatible gateway;
- the gateway answering 429 (Retry-After) / 503 to every request for --gateway-outage
  seconds, with three numbers it refuses for good (400, error 21211).

    python -m bench.faults [--players 10000] [--trials 20] [--seed N] [--only kill,gateway]

Trial N of a run uses seed + N - 1: `--seed S --first N --trials 1` runs trial N of the run
with seed S again (the same stage and point of the fault, on a rig that is fresh).
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tests.fault_scenarios import (
    GatewayTrial,
    Trial,
    broker_trials,
    database_outage,
    gateway_outage,
    kill_trials,
    spacing,
    speaker_rig,
)
from tests.fault_services import OwnPostgres

app = typer.Typer(add_completion=False)
console = Console()
SCENARIOS = ("kill", "broker", "database", "gateway")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f} s"


def summary(trials: list[Trial]) -> Table:
    table = Table(title="Fault trials")
    for column in ("fault", "trials", "expected each", "lost", "duplicated", "not played*",
                   "settle min / median / max"):  # fmt: skip
        table.add_column(column, justify="left" if column == "fault" else "right")
    by_scenario: dict[str, list[Trial]] = {}
    for trial in trials:
        by_scenario.setdefault(trial.scenario, []).append(trial)
    for scenario, group in by_scenario.items():
        table.add_row(
            scenario,
            str(len(group)),
            f"{group[0].expected:,}",
            str(sum(t.lost for t in group)),
            str(sum(t.duplicated for t in group)),
            str(sum(t.explained for t in group)),
            _spread([t.settle_seconds for t in group]),
        )
    return table


def details(trials: list[Trial]) -> Table:
    table = Table(title="Each trial")
    for column in ("fault", "#", "how", "lost", "dup.", "settle"):
        table.add_column(column)
    for t in trials:
        table.add_row(
            t.scenario, str(t.number), t.fault, str(t.lost), str(t.duplicated),
            f"{t.settle_seconds:.1f} s",
        )  # fmt: skip
        for note in t.notes:
            table.add_row("", "", f"  {note}", "", "", "")
    return table


@app.command()
def main(
    players: Annotated[int, typer.Option(help="Simulated players per broadcast.")] = 10_000,
    trials: Annotated[int, typer.Option(help="kill -9 trials.")] = 20,
    broker_trials_: Annotated[int, typer.Option("--broker-trials")] = 3,
    broker_down: Annotated[float, typer.Option(help="Seconds the broker stays dead.")] = 5.0,
    recipients: Annotated[int, typer.Option(help="SMS blast size (database outage).")] = 3000,
    rate: Annotated[int, typer.Option(help="SMS segments per second in that blast.")] = 50,
    db_down: Annotated[float, typer.Option(help="Seconds PostgreSQL stays stopped.")] = 30.0,
    gateway_outage_: Annotated[
        float, typer.Option("--gateway-outage", help="Seconds of 429/503.")
    ] = 60.0,
    gateway_recipients: Annotated[int, typer.Option()] = 200,
    retry_after: Annotated[int, typer.Option(help="The 429s' Retry-After, seconds.")] = 15,
    seed: Annotated[int | None, typer.Option(help="Random seed (printed when drawn).")] = None,
    first: Annotated[
        int,
        typer.Option(
            min=1,
            help="Number of the first kill and broker trial: with the seed of an earlier run, "
            "trial N of that run again (its stage and point of the fault).",
        ),
    ] = 1,
    only: Annotated[str, typer.Option(help=f"Some of {','.join(SCENARIOS)}.")] = ",".join(
        SCENARIOS
    ),
    out: Annotated[Path | None, typer.Option(help="Also write the trials as JSON here.")] = None,
) -> None:
    """Inject each fault under a running `coso serve`; print what was lost or doubled."""
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s) {sorted(unknown)}", param_hint="--only")
    seed = seed if seed is not None else random.randrange(1_000_000)
    started = datetime.now(UTC)
    console.print(
        f"seed {seed}; {platform.node()}: {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"Python {platform.python_version()}; {started:%Y-%m-%d %H:%M} UTC"
    )
    results: list[Trial] = []
    columns = (
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="coso-faults-") as tmp,
        OwnPostgres() as pg,
        Progress(*columns, console=console) as progress,
    ):
        work = Path(tmp)
        if {"kill", "broker"} & set(chosen):
            task = progress.add_task(f"{players:,} players connecting", total=None)
            with speaker_rig(pg, work / "speakers", players) as rig:
                if "kill" in chosen:
                    progress.update(task, description="kill -9 coso serve", total=trials)
                    for number in range(first, first + trials):
                        results += kill_trials(
                            rig, 1, seed + number - 1, lambda m: progress.console.log(m),
                            first=number,
                        )  # fmt: skip
                        progress.advance(task)
                if "broker" in chosen:
                    task = progress.add_task("broker killed", total=broker_trials_)
                    for number in range(first, first + broker_trials_):
                        results += broker_trials(
                            rig, 1, seed + number - 1, broker_down,
                            lambda m: progress.console.log(m), first=number,
                        )  # fmt: skip
                        progress.advance(task)
        if "database" in chosen:
            task = progress.add_task("PostgreSQL stopped mid blast", total=1)
            results.append(
                database_outage(
                    pg,
                    work / "database",
                    recipients,
                    rate,
                    db_down,
                    recipients // 4,
                    lambda m: progress.console.log(m),
                )
            )
            progress.advance(task)
        if "gateway" in chosen:
            task = progress.add_task("gateway 429/503", total=1)
            results.append(
                gateway_outage(
                    pg,
                    work / "gateway",
                    gateway_recipients,
                    gateway_outage_,
                    retry_after,
                    {"first_delay": "10s", "max_delay": "10m", "max_attempts": 8},
                    lambda m: progress.console.log(m),
                )
            )
            progress.advance(task)
    console.print(details(results))
    console.print(summary(results))
    console.print("* not played / not sent, and the activity log says why (failed, expired)")
    for trial in results:
        if isinstance(trial, GatewayTrial):
            console.print(
                f"retry spacing (median gap before retry 1, 2, …): 429 with Retry-After "
                f"{trial.retry_after}: {spacing(trial.gaps_429)} s; 503: "
                f"{spacing(trial.gaps_5xx)} s; requests per permanently refused number "
                f"(from the first 400 on): {sorted(trial.permanent_attempts.values())}"
            )
    console.print(f"took {time.time() - started.timestamp():.0f} s")
    if out is not None:
        out.write_text(
            json.dumps(
                {
                    "seed": seed,
                    "started": started.isoformat(),
                    "trials": [asdict(t) for t in results],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    app()
