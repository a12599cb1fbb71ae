"""Import a plan file: check every section first, then write it all in one transaction.

One module per section of the file (docs/plan-file.md) holds that section's checks; they run
in the file's order, each adding to a shared `Context` what later sections refer to, and
every error is collected so a user sees them all at once. `writer` writes a plan whose
checks all passed; `update` works out and applies what a file changes in a stored plan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from coso.config import Settings
from coso.errors import InputErrors
from coso.units import unit_tree
from schedules.models import Plan
from schedules.plan_import import (
    content,
    endpoints,
    groups,
    header,
    schedules,
    sessions,
    targets,
    writer,
)
from schedules.plan_import.checker import Checker, Context
from schedules.plan_import.stored import StoredPlan
from schedules.planfile import PlanFile, read_plan_file

# In the file's order; the content's rendering needs what the schedules reach.
CHECKS = (
    header.check,
    targets.check,
    content.check,
    content.check_stored,
    endpoints.check,
    groups.check,
    sessions.check,
    schedules.check,
    content.check_rendering,
)


def import_plan_file(engine: Engine, settings: Settings, path: Path, now: datetime) -> Plan:
    plan_file, text = read_plan_file(path)
    return import_plan(
        engine, settings, plan_file, now, source=str(path), text=text, folder=path.parent
    )


def import_plan(
    engine: Engine,
    settings: Settings,
    pf: PlanFile,
    now: datetime,
    *,
    source: str = "<plan>",
    text: str = "",
    folder: Path | None = None,
) -> Plan:
    """Check `pf` whole, then write it; InputErrors lists every problem, and then nothing
    is written. `folder` is where the file's relative paths (audio) start."""
    ctx = check_plan(engine, settings, pf, now, source=source, text=text, folder=folder)
    return writer.write(ctx, now)


def check_plan(
    engine: Engine,
    settings: Settings,
    pf: PlanFile,
    now: datetime,
    *,
    source: str = "<plan>",
    text: str = "",
    folder: Path | None = None,
    stored: StoredPlan | None = None,
) -> Context:
    """Every check of `pf`, as a new plan or (`stored`) as changes to the stored plan of its
    number; the checked file, or InputErrors listing every problem."""
    pf = pf.model_copy(deep=True)  # checks complete it (a clipped until…); the caller's stays
    ctx = Context(
        engine=engine,
        settings=settings,
        pf=pf,
        check=Checker(source, text),
        units=unit_tree(engine),
        zone=pf.plan.zone or settings.timer.default_zone,
        folder=folder,
        now=now,
        stored=stored,
    )
    for check in CHECKS:
        check(ctx)
    if ctx.check.errors:
        raise InputErrors(ctx.check.errors)
    return ctx


__all__ = ["check_plan", "import_plan", "import_plan_file"]
