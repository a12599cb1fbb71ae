"""What every section's checks share: the error collector and what earlier sections found."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from channels import registry
from channels.endpoints import check_address, endpoint_addresses
from coso.config import Settings
from coso.errors import InputError
from coso.units import UnitTree
from schedules.planfile import PlanFile, field_path, locate

if TYPE_CHECKING:
    from content.audio import PreparedAudio
    from schedules.plan_import.reach import Reached
    from schedules.plan_import.stored import StoredPlan
    from schedules.sessions import DayChange, Instance, SessionDef


class Checker:
    """Collects every error of a plan file with its line, instead of stopping at the first."""

    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text
        self.errors: list[InputError] = []

    def fail(self, loc: tuple[object, ...], value: object, reason: str) -> None:
        self.errors.append(
            InputError(
                field_path(loc), value, reason, source=self.source, line=locate(self.text, loc)
            )
        )


@dataclass
class Context:
    """One import: the file, where it goes, and what the sections checked so far found."""

    engine: Engine
    settings: Settings
    pf: PlanFile
    check: Checker
    units: UnitTree
    zone: str
    # content key → its state
    content_states: dict[str, str] = field(default_factory=dict)
    # channel → addresses of the file's endpoints
    file_endpoints: dict[str, set[str]] = field(default_factory=dict)
    existing_groups: set[str] = field(default_factory=set)
    file_groups: set[str] = field(default_factory=set)
    # (content key, "title" or "body") that does not parse or names what coso does not give
    unrenderable: set[tuple[str, str]] = field(default_factory=set)
    # schedule index → the endpoints it reaches, for the content checks
    reached: dict[int, list[Reached]] = field(default_factory=dict)
    # where the file's relative paths start (its folder); None: the working directory
    folder: Path | None = None
    # content key → (its prepared audio, the file's name), written with the plan
    audio: dict[str, tuple[PreparedAudio, str]] = field(default_factory=dict)
    # when the plan is imported: how far ahead a schedule may reach counts from here
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # --update: the plan of this number as stored, which the file changes
    stored: StoredPlan | None = None
    # [[sessions]] and [[session_exceptions]] of the file, as checked, new ones only
    session_defs: list[SessionDef] = field(default_factory=list)
    session_changes: list[DayChange] = field(default_factory=list)
    # queued schedule index → the sessions it goes to, with the item's seconds
    placements: dict[int, list[tuple[Instance, int]]] = field(default_factory=dict)

    def fail(self, loc: tuple[object, ...], value: object, reason: str) -> None:
        self.check.fail(loc, value, reason)

    def content_text(self, key: str) -> tuple[str, str]:
        """(title, body) of content `key` as this file writes it, else as stored; the key
        itself and no body when neither has it."""
        for entry in self.pf.content:
            if entry.key == key:
                return entry.title, entry.body
        if self.stored is not None and key in self.stored.content:
            found = self.stored.content[key]
            return found.title, found.body
        return key, ""

    def known_units(self, loc: tuple[object, ...], codes: list[str]) -> None:
        for code in codes:
            try:
                self.units.below(code)
            except InputError as exc:
                self.fail(loc, code, exc.reason)

    def channel(self, loc: tuple[object, ...], channel: str) -> bool:
        """Is `channel` installed? If not, the error names the ones that are."""
        try:
            registry.get(channel)
        except InputError as exc:
            self.fail(loc, channel, exc.reason)
            return False
        return True

    def address(self, loc: tuple[object, ...], channel: str, address: str) -> str | None:
        """The address as the channel keeps it (SMS: E.164), or None when it refuses it."""
        try:
            return check_address(field_path(loc), channel, address)
        except InputError as exc:
            self.fail(loc, address, exc.reason)
            return None

    def addresses(self, loc: tuple[object, ...], channel: str, written: list[str]) -> list[str]:
        """References to endpoints of `channel`, as the channel keeps them; each must be an
        endpoint of this file or of the database."""
        kept = {}
        for address in written:
            normal = self.address(loc, channel, address)
            if normal is not None:
                kept[normal] = address
        missing = set(kept) - self.file_endpoints.get(channel, set())
        if missing:
            missing -= endpoint_addresses(self.engine, channel, missing)
        for normal in sorted(missing):
            also = f" ({normal})" if normal != kept[normal] else ""
            self.fail(loc, kept[normal], f"no {channel} endpoint with this address{also}")
        return list(kept)
