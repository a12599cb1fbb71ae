"""What the activity log says became of a plan's deliveries in a period, read through what
is kept as the log is written: the outcome counts (`dispatcher.outcome_counts`, each
delivery under its last entry with a state, per local day), and the distinct endpoints
reached, found through the index of entries that reached people (`ix_activity_reached`).
Neither reads the whole log: the counts are a few rows per day and unit, read in the
order they are kept, and the endpoints are looked up one by one."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Engine, select, text

from coso.clock import as_utc
from dispatcher.models import REACHED_SQL
from dispatcher.outcome_counts import piece_of
from schedules.models import Occurrence, Schedule

OCC, S = Occurrence.__table__, Schedule.__table__
ONE_DAY = timedelta(days=1)


class Outcome(NamedTuple):
    """`n` deliveries of one channel, unit and content, whose slots fall in one piece of
    the period (the days of one week in one month, or one day), that ended the same way."""

    channel: str
    unit_code: str | None
    content_id: int | None  # None: any (not asked for), or none
    day: date  # the piece's first day (local; the piece may start before the period)
    state: str
    event: str
    n: int
    clip_seconds: float  # the length of their clips, together


def slots(engine: Engine, plan_id: int, lo: datetime, hi: datetime) -> list[tuple[int, datetime]]:
    """(occurrence id, slot in UTC) of the plan's occurrences in [lo, hi)."""
    query = (
        select(OCC.c.id, OCC.c.scheduled_for)
        .select_from(OCC.join(S, S.c.id == OCC.c.schedule_id))
        .where(S.c.plan_id == plan_id, OCC.c.scheduled_for >= lo, OCC.c.scheduled_for < hi)
    )
    with engine.connect() as conn:
        return [(oid, as_utc(at)) for oid, at in conn.execute(query)]


# The plan's counts in key order, already grouped as asked (no sorting), each with the
# length of its content's audio.
_COUNTS_SQL = """
SELECT c.channel, c.unit_code, c.{piece}, c.state, c.event, {content}, sum(c.n),
       sum(c.n * coalesce(m.duration_seconds, 0))
FROM {table} AS c LEFT JOIN media_asset AS m ON m.content_id = c.content_id
WHERE c.plan_id = :plan AND c.zone = :zone AND c.{days} >= :first AND c.{days} <= :last
  AND c.n <> 0{done}
GROUP BY c.channel, c.unit_code, c.{piece}, c.state, c.event{by_content}
"""


def outcomes(
    engine: Engine,
    plan_id: int,
    zone: str,
    first: date,
    last: date,
    *,
    by_content: bool = False,
    by_day: bool = False,
    done_only: bool = False,
) -> list[Outcome]:
    """The outcomes of the deliveries whose slots fall on the days `first` to `last` (in
    `zone`, the plan's), with the length of their clips, per piece (by day when `by_day`);
    per content item only when `by_content`. By piece, they are read grouped in the order
    they are kept (no sorting), from the counts per piece when the days are whole pieces."""
    params: dict[str, Any] = {"plan": plan_id, "zone": zone, "first": first, "last": last}
    if engine.dialect.name == "sqlite":  # as the Date column stores them
        params |= {"first": first.isoformat(), "last": last.isoformat()}
    whole = not by_day and first == piece_of(first) and last + ONE_DAY == piece_of(last + ONE_DAY)
    query = _COUNTS_SQL.format(
        table="outcome_count_piece" if whole else "outcome_count",
        days="piece" if whole else "day",
        piece="day" if by_day else "piece",
        content="c.content_id" if by_content else "0",
        by_content=", c.content_id" if by_content else "",
        done=f" AND c.{REACHED_SQL}" if done_only else "",
    )
    with engine.connect() as conn:
        rows = conn.execute(text(query), params).all()
    return [
        Outcome(channel, unit or None, content or None, _day(day), state, event, n, seconds)
        for channel, unit, day, state, event, content, n, seconds in rows
    ]


@lru_cache(maxsize=4096)
def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


# One endpoint's entries that reached people, in the period (and the units asked for),
# each still its delivery's outcome: no later entry with a state that did not.
_REACHED_BY = """
  a.plan_id = :plan AND a.endpoint_id = e.id AND a.{reached}
  AND {plus}a.occurrence_id IN (SELECT id FROM period){units}
  AND NOT EXISTS (SELECT 1 FROM activity_entry AS b
                  WHERE b.plan_id = a.plan_id AND b.delivery_id = a.delivery_id
                    AND b.id > a.id AND b.state IS NOT NULL AND NOT b.{reached})
"""
_LISTS = {
    "sqlite": (
        "WITH period AS MATERIALIZED (SELECT value AS id FROM json_each(:occurrences)), "
        "scope AS MATERIALIZED (SELECT value AS code FROM json_each(:units)), "
        "kind AS MATERIALIZED (SELECT value AS channel FROM json_each(:channels)) "
    ),
    "postgresql": (
        "WITH period AS (SELECT unnest(CAST(:occurrences AS integer[])) AS id), "
        "scope AS (SELECT unnest(CAST(:units AS varchar[])) AS code), "
        "kind AS (SELECT unnest(CAST(:channels AS varchar[])) AS channel) "
    ),
}
_ENDPOINTS = "FROM endpoint AS e WHERE e.channel IN (SELECT channel FROM kind)"


@cache
def _reached_sql(dialect: str, scoped: bool) -> tuple[Any, Any, Any]:
    """(endpoints reached per channel; per endpoint, the lowest and highest unit it was
    reached in; every unit one endpoint was reached in)."""
    # SQLite: `+` keeps it from looking the endpoint's entries up by each slot or unit in
    # turn: it reads them in index order and stops at the first that counts.
    plus = "+" if dialect == "sqlite" else ""
    units = f"\n  AND {plus}a.unit_code IN (SELECT code FROM scope)" if scoped else ""
    cond = _REACHED_BY.format(reached=REACHED_SQL, plus=plus, units=units)
    lists = _LISTS[dialect]
    found = f"EXISTS (SELECT 1 FROM activity_entry AS a WHERE {cond})"
    first = f"(SELECT a.unit_code FROM activity_entry AS a WHERE {cond} ORDER BY a.unit_code"
    return (
        text(f"{lists}SELECT e.channel, count(*) {_ENDPOINTS} AND {found} GROUP BY e.channel"),
        text(
            f"{lists}SELECT e.channel, e.id, {first} LIMIT 1), {first} DESC LIMIT 1) "
            f"{_ENDPOINTS} AND {found}"
        ),
        text(
            f"{lists}SELECT DISTINCT a.unit_code FROM endpoint AS e, activity_entry AS a "
            f"WHERE e.id = :endpoint AND {cond}"
        ),
    )


def reached(
    engine: Engine,
    plan_id: int,
    occurrence_ids: Collection[int],
    channels: Collection[str],
    units: Collection[str] | None,
    by_unit: bool,
) -> dict[tuple[str, str | None], int]:
    """(channel, unit or None) → distinct endpoints of `channels` with a delivery of these
    occurrences (in `units`, when given) that reached people."""
    if not occurrence_ids or not channels:
        return {}
    dialect = engine.dialect.name
    per_channel, per_endpoint, all_units = _reached_sql(dialect, units is not None)
    lists = (sorted(occurrence_ids), sorted(units or []), sorted(channels))
    params: dict[str, Any] = {"plan": plan_id}
    for name, values in zip(("occurrences", "units", "channels"), lists, strict=True):
        params[name] = values if dialect == "postgresql" else json.dumps(values)
    with engine.connect() as conn:
        if not by_unit:
            return {(channel, None): n for channel, n in conn.execute(per_channel, params)}
        # Where an endpoint's lowest and highest unit differ (it moved), all its units.
        out: dict[tuple[str, str | None], int] = {}
        for channel, endpoint, lowest, highest in conn.execute(per_endpoint, params).all():
            found = (
                {lowest}
                if lowest == highest
                else set(conn.scalars(all_units, params | {"endpoint": endpoint}))
            )
            for unit in found:
                out[(channel, unit)] = out.get((channel, unit), 0) + 1
    return out
