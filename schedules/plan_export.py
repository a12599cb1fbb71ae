"""A stored plan written back as a plan file: what `coso plan export` prints and what the
console edits. Read again with `coso plan import --update`, it changes nothing; a form that
adds a content item or a schedule adds it to this text and goes through the same checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import tomli_w
from sqlalchemy import Engine

from content.models import RETIRED
from schedules.plan_import.stored import StoredPlan, load_stored_plan
from schedules.planfile import PlanFile, PlanHeader


def stored_plan(engine: Engine, number: str) -> StoredPlan | None:
    probe = PlanFile(
        plan=PlanHeader(
            number=number, title="-", period_start="2000-01-01", period_end="2000-01-01"
        )  # type: ignore[arg-type]
    )
    with engine.connect() as conn:
        return load_stored_plan(conn, probe)


def plan_document(stored: StoredPlan) -> dict[str, Any]:
    """The plan as a plan file's tables (newest version of each content item; audio is
    kept as stored and not named)."""
    head = {"number": stored.number}
    head |= {k: v for k, v in stored.header.items() if v not in (None, "")}
    targets = [
        {"channel": c, "count": n, "per": per, "units": list(units), "note": note}
        for _, (c, n, per, units, note) in stored.targets
    ]
    content = []
    for item in stored.content.values():
        entry: dict[str, Any] = {"key": item.key, "kind": item.kind, "title": item.title}
        entry["body"] = item.body
        if item.state == RETIRED:
            entry["state"] = RETIRED
        content.append(entry)
    schedules = [_schedule(s.name, s.content, s.values) for s in stored.schedules]
    return {"plan": head, "targets": targets, "content": content, "schedules": schedules}


def _schedule(name: str, content: str, v: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    if v.get("rotation"):
        entry["rotation"] = list(v["rotation"])
        entry["policy"] = v["rotation_policy"]
        if v.get("rotation_weights"):
            entry["weights"] = dict(v["rotation_weights"])
    else:
        entry["content"] = content
    entry |= {
        "channel": v["channel"],
        "targets": {k: list(x) for k, x in (v["targets"] or {}).items() if x},
        "start": datetime.fromisoformat(v["start_local"]),
    }
    if v.get("queue"):  # into the sessions: its date range, and the queue as written
        entry["queue"] = {k: x for k, x in v["queue"].items() if x not in (None, [])}
        entry["start"] = entry["start"].date()
    if v["rrule"]:
        entry["rrule"] = v["rrule"]
    if v["until_local"]:
        entry["until"] = datetime.fromisoformat(v["until_local"])
    if v["exdates_local"]:
        entry["exdates"] = [datetime.fromisoformat(x) for x in v["exdates_local"]]
    entry["priority"] = v["priority"]
    if v["validity_seconds"] and not v.get("queue"):  # a queued one's is its sessions'
        entry["validity"] = f"{v['validity_seconds']}s"
    entry["misfire_grace"] = f"{v['misfire_grace_seconds']}s"
    if v["resend_unknown"]:
        entry["resend_unknown"] = True
    if v["options"]:
        entry["options"] = dict(v["options"])
    entry["enabled"] = bool(v["enabled"])
    return entry


def plan_text(document: dict[str, Any]) -> str:
    return tomli_w.dumps(document, multiline_strings=True)
