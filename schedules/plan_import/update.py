"""A plan file for a plan that exists (`coso plan import --update`, an upload in the console):
check it as a new import is checked, show what it would change, then apply exactly that in
one transaction. Changed text or audio of content becomes a new draft version
(content.versions): approved content keeps going out until that version is approved."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, select, update
from sqlmodel import Session

from content.models import RETIRED, ContentItem
from content.versions import item_in, media_columns, media_of, new_version_in, versions_in
from coso.config import Settings
from coso.csvfile import decode_text
from coso.db import writer
from coso.errors import InputError
from schedules.models import Plan, Schedule
from schedules.plan_import import check_plan
from schedules.plan_import import writer as plan_writer
from schedules.plan_import.changes import (
    ADDED,
    CHANGED,
    REMOVED,
    TIMING_FIELDS,
    PlanChange,
    plan_changes,
)
from schedules.plan_import.checker import Context
from schedules.plan_import.stored import StoredPlan, load_stored_plan
from schedules.planfile import parse_plan_text, read_plan_file

C, S = ContentItem.__table__, Schedule.__table__


@dataclass(frozen=True)
class PlanUpdate:
    """What a checked plan file would do to the stored plan of its number. With no stored
    plan (`stored` None) it is a new plan, imported as `coso plan import` does."""

    number: str
    stored: StoredPlan | None
    changes: tuple[PlanChange, ...]
    checked: Context

    @property
    def fingerprint(self) -> str:
        """Names these exact changes: a console that showed them can check, when they are
        confirmed, that a fresh check of the same file still finds them."""
        text = "\n".join(repr(c) for c in self.changes)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def check_update(
    engine: Engine,
    settings: Settings,
    plan_file: Path | str | bytes,
    now: datetime,
    *,
    source: str | None = None,
    folder: Path | None = None,
) -> PlanUpdate:
    """Read a plan file — a path, or its text (str, or bytes as uploaded) — and check it
    whole against the stored plan of its number; InputErrors names every problem. `folder`
    is where its relative paths (audio) start: a path's own folder by default."""
    if isinstance(plan_file, Path):
        pf, text = read_plan_file(plan_file)
        source = source or str(plan_file)
        folder = folder or plan_file.parent
    else:
        source = source or "<plan>"
        text = decode_text(plan_file, source) if isinstance(plan_file, bytes) else plan_file
        pf = parse_plan_text(text, source)
    with engine.connect() as conn:
        stored = load_stored_plan(conn, pf)
    checked = check_plan(
        engine, settings, pf, now, source=source, text=text, folder=folder, stored=stored
    )
    if stored is None:
        new = PlanChange(
            "plan",
            ADDED,
            pf.plan.number,
            f"Kế hoạch mới {pf.plan.number}: nhập cả tệp như coso plan import",
        )
        return PlanUpdate(pf.plan.number, None, (new,), checked)
    with engine.connect() as conn:  # again: with the file's addresses as the channels keep them
        stored = load_stored_plan(conn, checked.pf)
    assert stored is not None
    return PlanUpdate(pf.plan.number, stored, tuple(plan_changes(stored, checked)), checked)


def apply_update(engine: Engine, change: PlanUpdate, by: str, now: datetime) -> Plan:
    """Apply the changes `check_update` found, all in one transaction, after making sure the
    stored plan still gives exactly them (else nothing is changed and the error says to look
    again). `by` is recorded as the editor of new content versions."""
    if change.stored is None:
        return plan_writer.write(change.checked, now)
    added: list[Path] = []  # audio files this wrote, removed again if it fails
    try:
        return _apply(engine, change, by, now, added)
    except BaseException:
        for path in added:
            path.unlink(missing_ok=True)
        raise


def _apply(engine: Engine, change: PlanUpdate, by: str, now: datetime, added: list[Path]) -> Plan:
    ctx = change.checked
    P = Plan.__table__
    with Session(writer(engine), expire_on_commit=False) as session:
        conn = session.connection()
        conn.execute(select(P.c.id).where(P.c.number == change.number).with_for_update())
        stored = load_stored_plan(conn, ctx.pf)
        if stored is None or tuple(plan_changes(stored, ctx)) != change.changes:
            raise InputError(
                "plan.number",
                change.number,
                "kế hoạch vừa được thay đổi từ lúc xem các thay đổi; không thay đổi gì: hãy"
                " xem lại các thay đổi rồi xác nhận lại",
            )
        plan = session.get(Plan, stored.id)
        assert plan is not None
        apply = _Apply(session, ctx, stored, plan, by, now, added)
        for one in change.changes:
            getattr(apply, one.section)(one)
        session.commit()
    return plan


class _Apply:
    """One method per section of the file, each applying one change of that section."""

    def __init__(
        self,
        session: Session,
        ctx: Context,
        stored: StoredPlan,
        plan: Plan,
        by: str,
        now: datetime,
        added: list[Path],
    ) -> None:
        self.session, self.ctx, self.stored, self.row = session, ctx, stored, plan
        self.by, self.now, self.added = by, now, added
        self.content_ids = {key: c.id for key, c in stored.content.items()}
        self._sessions_added = False

    def plan(self, change: PlanChange) -> None:
        head, plan = self.ctx.pf.plan, self.row
        organisation_id = plan_writer.organisation(self.session, head.organisation)
        plan.title, plan.issuer, plan.issued_on = head.title, head.issuer, head.issued_on
        plan.period_start, plan.period_end = head.period_start, head.period_end
        plan.zone = self.ctx.zone
        if organisation_id != plan.organisation_id:
            plan.organisation_id = organisation_id
            self.session.execute(
                update(S).where(S.c.plan_id == plan.id).values(organisation_id=organisation_id)
            )
        self.session.add(plan)
        self.session.flush()

    def targets(self, change: PlanChange) -> None:
        from schedules.models import PlanTarget

        if change.action == ADDED:
            plan_writer.add_target(self.session, self.stored.id, self.ctx.pf.targets[_at(change)])
        else:
            table = PlanTarget.__table__
            self.session.execute(table.delete().where(table.c.id == change.stored_id))

    def content(self, change: PlanChange) -> None:
        session, ctx = self.session, self.ctx
        if change.action == ADDED:
            item = ctx.pf.content[_at(change)]
            self.content_ids[item.key] = plan_writer.add_content(
                session, ctx, self.stored.id, item, self.now, self.added
            )
            return
        if change.action == REMOVED or any(f.field == "state" for f in change.fields):
            session.execute(update(C).where(C.c.id == change.stored_id).values(state=RETIRED))
            return
        session.flush()
        conn = session.connection()
        entry = ctx.pf.content[_at(change)]
        item = item_in(conn, self.stored.id, entry.key)
        media = media_of(versions_in(conn, item)[-1])
        if any(f.field == "audio" for f in change.fields):
            asset = plan_writer.store_prepared(ctx, item.id, entry.key, self.now, self.added)
            media = media_columns(asset)
        new_version_in(conn, item, entry.title, entry.body, media, self.by, self.now)

    def endpoints(self, change: PlanChange) -> None:
        plan_writer.add_endpoint(
            self.session, self.ctx, self.ctx.pf.endpoints[_at(change)], self.now
        )
        self.session.flush()

    def groups(self, change: PlanChange) -> None:
        plan_writer.add_group(self.session, self.ctx.pf.groups[_at(change)])

    def schedules(self, change: PlanChange) -> None:
        now = self.now
        if change.action == REMOVED:
            self.session.execute(
                update(S).where(S.c.id == change.stored_id).values(enabled=False, updated_at=now)
            )
            return
        sch = self.ctx.pf.schedules[_at(change)]
        values: dict[str, Any] = {
            **plan_writer.schedule_values(self.ctx, sch),
            "content_id": self.content_ids[sch.content],
            "organisation_id": self.row.organisation_id,
            "updated_at": now,
        }
        if change.action == ADDED:
            row = Schedule(plan_id=self.stored.id, **values, fired_through=now)
            self.session.add(row)
            self._place(row, _at(change))
            return
        changed = {f.field for f in change.fields}
        if changed & TIMING_FIELDS or ("enabled" in changed and sch.enabled):
            # New times, or on again: from now on, without back-filling what came before.
            values["fired_through"] = case((S.c.fired_through < now, now), else_=S.c.fired_through)
        self.session.execute(update(S).where(S.c.id == change.stored_id).values(**values))
        if sch.queue is not None:
            self._place(self.session.get(Schedule, change.stored_id), _at(change))

    def sessions(self, change: PlanChange) -> None:
        """The file's new sessions and day changes, written once for all of them (before the
        schedules placed into them, which come later in the list)."""
        if not self._sessions_added:
            plan_writer.add_sessions(self.session, self.ctx, self.stored.id, self.now)
            self._sessions_added = True

    def _place(self, row: Schedule | None, index: int) -> None:
        """A queued schedule's sessions, as the check placed it (from now on)."""
        if row is None:
            return
        if not self._sessions_added:
            plan_writer.add_sessions(self.session, self.ctx, self.stored.id, self.now)
            self._sessions_added = True
        if index in self.ctx.placements:
            self.session.flush()
            plan_writer.add_placements(
                self.session,
                row.id,  # type: ignore[arg-type]
                self.ctx.placements[index],
                self.now,
            )


def _at(change: PlanChange) -> int:
    assert change.index is not None, change
    return change.index


__all__ = ["CHANGED", "PlanUpdate", "apply_update", "check_update"]
