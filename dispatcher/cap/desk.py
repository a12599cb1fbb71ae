"""The seam between CAP intake and the emergency: `EmergencyDesk` carries out an
`AlertAction` (dispatcher.cap.decisions) and returns the emergency's reference."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine

from coso.config import Settings
from dispatcher.cap.decisions import CANCEL, DECLARE, UPDATE, AlertAction
from dispatcher.emergency import EmergencyRequest, cancel, declare, update


class EmergencyDesk(Protocol):
    def carry_out(self, call: AlertAction, now: datetime, actor: str) -> str | None:
        """Declare, update or cancel; the emergency's reference (the one declared, or the
        one acted on)."""
        ...


class Emergencies:
    """The emergency module of this installation (dispatcher.emergency)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def carry_out(self, call: AlertAction, now: datetime, actor: str) -> str | None:
        if call.kind == DECLARE:
            request = EmergencyRequest(
                text=call.text,
                units=list(call.units),
                until=call.until,
                drill=call.drill,
                title=call.title,
                source=call.source,
            )
            return str(declare(self.engine, self.settings, request, now, actor))
        if call.kind == UPDATE:
            assert call.ref is not None
            update(
                self.engine,
                self.settings,
                call.ref,
                text=call.text,
                units=list(call.units),
                until=call.until,
                title=call.title,
                now=now,
                actor=actor,
            )
            return call.ref
        if call.kind == CANCEL:
            assert call.ref is not None
            cancel(
                self.engine, self.settings, call.ref, now=now, actor=actor, note=call.reason or None
            )
            return call.ref
        return None
