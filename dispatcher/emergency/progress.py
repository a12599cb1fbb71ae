"""An emergency read by its reference: what it is, and per channel and unit how many it
reached, how many wait and how many failed (each delivery counted once, by its state)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from channels.states import PENDING, PROVEN, RETRY_WAIT, SENDING, SENT
from content.models import ContentItem, ContentVersion
from coso.errors import InputError
from coso.units import UnitTree, unit_names, unit_tree
from dispatcher.models import Delivery
from dispatcher.queries import LogFilter, activity
from schedules.emergencies import Emergency, shown_state

E, D, C = Emergency.__table__, Delivery.__table__, ContentItem.__table__
WAITING_STATES = (PENDING, SENDING, SENT, RETRY_WAIT)


def outcome_of(state: str) -> str:
    """reached, pending or failed."""
    if state in PROVEN:
        return "reached"
    if state in WAITING_STATES:
        return "pending"
    return "failed"


@dataclass
class ProgressRow:
    channel: str
    unit_code: str | None
    unit_name: str
    reached: int = 0
    pending: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.reached + self.pending + self.failed


@dataclass
class EmergencyProgress:
    emergency: Any  # its row
    state: str  # active | cancelled | ended, as shown now
    rows: list[ProgressRow] = field(default_factory=list)  # the warning, per channel and unit
    notice: ProgressRow | None = None  # the cancellation texts, when any

    def totals(self) -> dict[str, ProgressRow]:
        """Per channel, every unit summed."""
        found: dict[str, ProgressRow] = {}
        for r in self.rows:
            t = found.setdefault(r.channel, ProgressRow(r.channel, None, ""))
            t.reached, t.pending, t.failed = (
                t.reached + r.reached,
                t.pending + r.pending,
                t.failed + r.failed,
            )
        return found


def find(engine: Engine, ref: str) -> Any:
    """An emergency's row by reference (or by id); an InputError naming it when none."""
    text = (ref or "").strip()
    with engine.connect() as conn:
        row = conn.execute(select(E).where(E.c.reference == text)).first()
        if row is None and text.isdigit() and len(text) < 10:
            row = conn.execute(select(E).where(E.c.id == int(text))).first()
    if row is None:
        raise InputError("reference", ref, "không có tin khẩn cấp mang số hiệu này")
    return row


def covered(tree: UnitTree, row: Any) -> set[str]:
    """Every unit an emergency reaches: its units and all below them."""
    found: set[str] = set()
    for code in row.units:
        try:
            found |= tree.below(code)
        except InputError:  # a unit since removed reaches nothing
            continue
    return found


def list_emergencies(
    engine: Engine, units: frozenset[str] | None = None, limit: int = 100
) -> list[Any]:
    """The newest first; with `units`, those that reach one of them."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(E).order_by(E.c.declared_at.desc(), E.c.id.desc()).limit(limit * 4)
        ).all()
    if units is not None:
        tree = unit_tree(engine)
        rows = [r for r in rows if covered(tree, r) & units]
    return rows[:limit]


def progress(engine: Engine, ref: str, now: datetime | None = None) -> EmergencyProgress:
    """Per channel and unit: reached, pending, failed, for the emergency's current words
    (and its cancellation texts apart)."""
    row = find(engine, ref)
    with engine.connect() as conn:
        counted = conn.execute(
            select(D.c.channel, D.c.unit_code, C.c.key, D.c.state, func.count())
            .select_from(D.join(C, C.c.id == D.c.content_id))
            .where(D.c.plan_id == row.plan_id)
            .group_by(D.c.channel, D.c.unit_code, C.c.key, D.c.state)
        ).all()
    names = unit_names(engine, {u for _c, u, _k, _s, _n in counted if u})
    current = f"canh-bao-{row.version}"
    by: dict[tuple[str, str | None], ProgressRow] = {}
    notice: ProgressRow | None = None
    for channel, unit, key, state, n in counted:
        if key == current:
            target = by.get((channel, unit))
            if target is None:
                target = by[(channel, unit)] = ProgressRow(
                    channel, unit, names.get(unit or "", unit or "")
                )
        elif key.startswith("huy-"):
            notice = notice or ProgressRow(channel, None, "")
            target = notice
        else:
            continue  # an earlier version, replaced
        kind = outcome_of(state)
        setattr(target, kind, getattr(target, kind) + n)
    rows = sorted(by.values(), key=lambda r: (r.channel, r.unit_code or ""))
    state = shown_state(row.state, row.until, now) if now is not None else row.state
    return EmergencyProgress(row, state, rows, notice)


def last_states(engine: Engine, ref: str) -> dict[str, dict[str, int]]:
    """Per channel, reached/pending/failed as the activity log tells it: each delivery of
    the current words under its last entry with a state."""
    row = find(engine, ref)
    current = f"canh-bao-{row.version}"
    entries = activity(engine, row.plan_id, LogFilter(limit=None))
    with engine.connect() as conn:
        content_id = conn.scalar(
            select(C.c.id).where(C.c.plan_id == row.plan_id, C.c.key == current)
        )
    last: dict[int, Any] = {}
    for e in sorted(entries, key=lambda e: e.id):
        if e.delivery_id is not None and e.state and e.content_id == content_id:
            last[e.delivery_id] = e
    found: dict[str, dict[str, int]] = defaultdict(
        lambda: {"reached": 0, "pending": 0, "failed": 0}
    )
    for e in last.values():
        found[e.channel][outcome_of(e.state)] += 1
    return dict(found)


def current_audio(engine: Engine, row: Any) -> Any | None:
    """What the loudspeakers play of its current words, as its content version records it
    (`media_voice` set: speech, synthesised by that voice); None when it has no audio."""
    V = ContentVersion.__table__
    with engine.connect() as conn:
        found = conn.execute(
            select(
                V.c.media_file_name,
                V.c.media_source_name,
                V.c.media_voice,
                V.c.media_duration_seconds,
                V.c.media_loudness_lufs,
            )
            .join(C, C.c.id == V.c.content_id)
            .where(C.c.plan_id == row.plan_id, C.c.key == f"canh-bao-{row.version}")
            .order_by(V.c.version.desc())
            .limit(1)
        ).first()
    return found if found is not None and found.media_file_name else None


def emergency_log(engine: Engine, ref: str, limit: int = 200) -> list[Any]:
    """Its activity log, newest first."""
    row = find(engine, ref)
    return activity(engine, row.plan_id, LogFilter(limit=limit))
