"""The one inbound path: every outcome from outside (a player's event, a gateway's status
callback, an operator's confirmation) comes through `receive_in`.

An outcome names its delivery by delivery id, by provider id, or by slot (endpoint, schedule,
time); references are matched in SQL, and the matched outcomes are applied by
`transitions.apply_outcomes` (forward moves only). An outcome whose provider id is not
recorded yet (the far side answered before the sender wrote down the id) is parked in
`early_outcome` and applied when the sender records it. False outcomes — about a delivery
coso never sent, another endpoint's delivery or an unknown slot — are refused and logged
here, once for every channel."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, text, tuple_
from sqlmodel import Field, SQLModel

from channels.base import Outcome
from channels.endpoints import Endpoint
from channels.host import Received, Rejected
from coso.clock import as_utc
from coso.db import chunks
from dispatcher.models import Delivery
from dispatcher.transitions import LOG_SOURCE, append_log, apply_outcomes, log_rows

log = logging.getLogger(__name__)
D = Delivery.__table__
E = Endpoint.__table__
PROVIDER_LOCK = 0x636F736F_534D53  # advisory lock key; the timer holds another


class EarlyOutcome(SQLModel, table=True):
    """An outcome that overtook its delivery's provider id: applied once the sender records
    that id. One that never finds its delivery waits harmlessly."""

    __tablename__ = "early_outcome"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(index=True)
    state: str
    event: str
    at: datetime
    actor: str
    error: str | None = None
    detail: str | None = None


EARLY = EarlyOutcome.__table__


def serialise(conn: Connection) -> None:
    """Matching provider ids and recording them take turns (PostgreSQL; SQLite has one writer
    anyway), so an outcome is never parked just as its provider id is being recorded."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROVIDER_LOCK})


def receive_in(conn: Connection, outcomes: Sequence[Outcome], *, park: bool = True) -> Received:
    """Match, apply, park or refuse `outcomes`, in the caller's transaction."""
    result = Received()
    if not outcomes:
        return result
    by_provider = _by_provider(conn, [o for o in outcomes if _names_provider(o)])
    by_slot = _by_slot(conn, [o for o in outcomes if _names_slot(o)])
    matched: list[Outcome] = []
    to_park: list[Outcome] = []
    for o in outcomes:
        if o.delivery_id is not None:
            matched.append(o)
        elif _names_slot(o):
            found = by_slot.get((o.endpoint_id, o.schedule_id, o.scheduled_for))
            if found is None:
                slot = f"{o.schedule_id}@{o.scheduled_for:%Y-%m-%dT%H:%M:%SZ}"  # type: ignore[str-format]
                result.rejected.append(
                    Rejected(
                        o, f"rejected {o.event!r} from {_who(o)} about slot {slot}, unknown to coso"
                    )
                )
            else:
                matched.append(replace(o, delivery_id=found))
        elif o.provider_id:
            found = by_provider.get(o.provider_id)
            if found is not None:
                matched.append(replace(o, delivery_id=found))
            elif park:
                to_park.append(o)
            else:
                result.rejected.append(
                    Rejected(
                        o,
                        f"{o.event!r} from {_who(o)} about {o.provider_id}, "
                        "a message coso did not send",
                    )
                )
        else:
            result.rejected.append(Rejected(o, f"{o.event!r} from {_who(o)} names no delivery"))
    if to_park:
        conn.execute(insert(EARLY), [_parked_row(o) for o in to_park])
        result.parked = to_park
    applied, refused = apply_outcomes(conn, matched)
    result.applied = applied
    _sort_refused(conn, refused, result)
    for r in result.rejected:
        log.warning("%s", r.reason)
    return result


def release_parked(conn: Connection, provider_ids: Sequence[str]) -> Received:
    """After the sender recorded `provider_ids`: apply the outcomes that arrived before.
    The transaction holds the lock of `serialise` already."""
    ids = [i for i in provider_ids if i]
    if not ids:
        return Received()
    waiting = []
    for batch in chunks(ids, 5000):
        waiting += conn.execute(
            select(EARLY).where(EARLY.c.provider_id.in_(batch)).order_by(EARLY.c.id)
        ).all()
    if not waiting:
        return Received()
    conn.execute(delete(EARLY).where(EARLY.c.id.in_([w.id for w in waiting])))
    outcomes = [
        Outcome(
            None,
            w.state,
            w.event,
            as_utc(w.at),
            w.actor,
            provider_id=w.provider_id,
            error=w.error,
            detail=w.detail,
            inbound=True,
        )
        for w in waiting
    ]
    return receive_in(conn, outcomes, park=False)


def _names_provider(o: Outcome) -> bool:
    return o.delivery_id is None and bool(o.provider_id) and o.schedule_id is None


def _names_slot(o: Outcome) -> bool:
    return (
        o.delivery_id is None
        and o.schedule_id is not None
        and o.scheduled_for is not None
        and o.endpoint_id is not None
    )


def _by_provider(conn: Connection, outcomes: Sequence[Outcome]) -> dict[str, int]:
    if not outcomes:
        return {}
    serialise(conn)
    found: dict[str, int] = {}
    ids = sorted({o.provider_id for o in outcomes if o.provider_id})
    for batch in chunks(ids, 5000):
        found.update(
            (pid, did)
            for did, pid in conn.execute(
                select(D.c.id, D.c.provider_id).where(D.c.provider_id.in_(batch))
            )
        )
    return found


def _by_slot(
    conn: Connection, outcomes: Sequence[Outcome]
) -> dict[tuple[int | None, int | None, datetime | None], int]:
    keys = list({(o.endpoint_id, o.schedule_id, o.scheduled_for) for o in outcomes})
    found: dict[tuple[int | None, int | None, datetime | None], int] = {}
    for batch in chunks(keys, 2000):
        rows = conn.execute(
            select(D.c.id, D.c.endpoint_id, D.c.schedule_id, D.c.scheduled_for).where(
                tuple_(D.c.endpoint_id, D.c.schedule_id, D.c.scheduled_for).in_(list(batch))
            )
        )
        for did, eid, sid, when in rows:
            found[(eid, sid, as_utc(when))] = did
    return found


def _parked_row(o: Outcome) -> dict[str, object]:
    return {
        "provider_id": o.provider_id,
        "state": o.state,
        "event": o.event,
        "at": o.at,
        "actor": o.actor,
        "error": o.error,
        "detail": o.detail,
    }


def _who(o: Outcome) -> str:
    """`player:loa-a (as-run)` → `player loa-a`."""
    kind, _, rest = o.actor.partition(":")
    return f"{kind} {rest.split(' ')[0]}" if rest else kind


def _sort_refused(conn: Connection, refused: Sequence[Outcome], result: Received) -> None:
    """A refused outcome is stale (a repeat, or overtaken by a later one), out of order (the
    far side reports a state the delivery has passed: logged), or false (another
    endpoint's delivery: logged on it; a delivery that does not exist)."""
    if not refused:
        return
    rows = {}
    for batch in chunks(sorted({o.delivery_id for o in refused if o.delivery_id}), 5000):
        rows.update(
            (r.id, r)
            for r in conn.execute(
                select(*LOG_SOURCE, D.c.state, E.c.address)
                .join(E, E.c.id == D.c.endpoint_id)
                .where(D.c.id.in_(batch))
            )
        )
    entries = []
    for o in refused:
        row = rows.get(o.delivery_id)
        if row is None:
            result.rejected.append(
                Rejected(
                    o,
                    f"rejected {o.event!r} from {_who(o)} about delivery "
                    f"{o.delivery_id}, which coso never sent",
                )
            )
            continue
        if o.endpoint_id is not None and row.endpoint_id != o.endpoint_id:
            kind = o.actor.partition(":")[0]
            reason = (
                f"rejected {o.event!r} from {_who(o)} about delivery {o.delivery_id}, "
                f"which was addressed to {kind} {row.address}"
            )
            result.rejected.append(Rejected(o, reason))
            entries += log_rows(
                [row], at=o.at, event="rejected", state=None, actor=o.actor, detail=reason
            )
            continue
        result.stale.append(o)
        if o.inbound and row.state != o.state:
            entries += log_rows(
                [row],
                at=o.at,
                event="status",
                state=None,
                actor=o.actor,
                detail=f"{o.event} arrived after the delivery was {row.state}; it stays "
                f"{row.state}" + (f" ({o.error})" if o.error else ""),
            )
    append_log(conn, entries)
