"""The report's outcome counts (table `outcome_count`): per plan, local day of the slot (in
the plan's zone), channel, unit, content item, state and event, how many deliveries have
that outcome — the state and event of their last log entry with a state.

They change in the transaction that appends the entries (`dispatcher.transitions`): for
each delivery an entry moves, one less under its previous last entry and one more under the
new one, both read from the log itself. The log stays the source: `recount` rebuilds the
counts from it and `differences` compares them with it (`coso report PLAN --rebuild`,
`--check`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, select, text

from coso.clock import zone as zone_named
from coso.db import chunks, write
from dispatcher.models import OutcomeCount, OutcomePieceCount
from schedules.models import Occurrence, Plan, Schedule

# (plan, zone, channel, unit or "", piece, state, event, content or 0, local day)
Key = tuple[int, str, str, str, date, str, str, int, date]
COLUMNS = (
    "plan_id",
    "zone",
    "channel",
    "unit_code",
    "piece",
    "state",
    "event",
    "content_id",
    "day",
)
_TYPES = (
    "integer",
    "varchar",
    "varchar",
    "varchar",
    "date",
    "varchar",
    "varchar",
    "integer",
    "date",
)


def key_of(
    plan_id: int,
    zone: str,
    channel: str,
    unit_code: str | None,
    day: date,
    state: str,
    event: str,
    content_id: int | None,
) -> Key:
    piece = piece_of(day)
    return (plan_id, zone, channel, unit_code or "", piece, state, event, content_id or 0, day)


@lru_cache(maxsize=4096)
def piece_of(day: date) -> date:
    """The first day of the piece a day is in: its week, cut at the month's start."""
    return max(day - timedelta(days=day.weekday()), day.replace(day=1))


def local_day(slot: datetime | str, zone: str) -> date:
    """The day a slot falls on in `zone` (a slot as SQLite returns it: UTC text)."""
    return _local_day(slot if isinstance(slot, str) else slot.isoformat(), zone)


@lru_cache(maxsize=4096)
def _local_day(slot: str, zone: str) -> date:
    when = datetime.fromisoformat(slot)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone_named(zone)).date()


@dataclass
class OutcomeChanges:
    """What a transaction's entries change in the counts, written at once by `save` (one
    statement in key order: two transactions never wait on each other's rows crosswise)."""

    counts: Counter[Key] = field(default_factory=Counter)

    def move(self, before: Key | None, after: Key, n: int = 1) -> None:
        """`n` deliveries leave `before` (None: they had no outcome) for `after`."""
        if before == after:
            return
        if before is not None:
            self.counts[before] -= n
        self.counts[after] += n

    def save(self, conn: Connection) -> None:
        """Both tables: the counts per day, and the same per piece (without the day)."""
        per_piece: Counter[tuple[Any, ...]] = Counter()
        for k, n in self.counts.items():
            per_piece[k[:8]] += n
        for table, counts in (("outcome_count", self.counts), (PIECE_TABLE, per_piece)):
            changed = sorted((k, n) for k, n in counts.items() if n)
            if not changed:
                continue
            dialect, width = conn.dialect.name, len(changed[0][0])
            rows = [(*k, n) for k, n in changed]
            conn.execute(_upsert(dialect, table, width), _rows(dialect, rows))
            emptied = [(*k, 0) for k, n in changed if n < 0]
            if emptied:
                conn.execute(_delete_empty(dialect, table, width), _rows(dialect, emptied))
        self.counts.clear()


PIECE_TABLE = "outcome_count_piece"


def _rows(dialect: str, rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    if dialect == "postgresql":
        names = (*COLUMNS[: len(rows[0]) - 1], "n")
        return {name: [r[i] for r in rows] for i, name in enumerate(names)}
    return {"rows": json.dumps(rows, default=date.isoformat)}


def _source(dialect: str, width: int) -> str:
    """The rows of one statement (`width` key columns, then n)."""
    if dialect == "postgresql":
        typed = (*zip(COLUMNS[:width], _TYPES[:width], strict=True), ("n", "integer"))
        return f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in typed)})"
    fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width + 1))
    return f"SELECT {fields} FROM json_each(:rows) WHERE true"


@cache
def _upsert(dialect: str, table: str, width: int) -> Any:
    names = ", ".join(COLUMNS[:width])
    return text(
        f"INSERT INTO {table} ({names}, n) {_source(dialect, width)} "
        f"ON CONFLICT ({names}) DO UPDATE SET n = {table}.n + excluded.n"
    )


@cache
def _delete_empty(dialect: str, table: str, width: int) -> Any:
    names = ", ".join(COLUMNS[:width])
    if dialect == "postgresql":
        keys = f"SELECT {names} FROM ({_source(dialect, width)}) AS gone({names}, n)"
    else:
        fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width))
        keys = f"SELECT {fields} FROM json_each(:rows)"
    return text(f"DELETE FROM {table} WHERE n = 0 AND ({names}) IN ({keys})")


# Each delivery's last entry with a state, the columns its next entry copies from the
# delivery row, and its slot and plan's zone (the day it counts on). The entry is read from
# ix_activity_outcome (plan, delivery, id, state) alone.
_LAST = (
    "SELECT d.id, d.plan_id, p.zone, d.scheduled_for, d.channel, d.unit_code, d.content_id, "
    "a.channel, a.unit_code, a.content_id, a.state, a.event "
    "FROM delivery AS d JOIN plan AS p ON p.id = d.plan_id "
    "LEFT JOIN activity_entry AS a ON a.id = ("
    "SELECT max(b.id) FROM activity_entry AS b WHERE b.plan_id = d.plan_id "
    "AND b.delivery_id = d.id AND b.state IS NOT NULL) "
    "WHERE d.id IN ({ids})"
)
_IDS = {
    "postgresql": "SELECT unnest(CAST(:ids AS integer[]))",
    "sqlite": "SELECT value FROM json_each(:ids)",
}


@cache
def _last_statement(dialect: str) -> Any:
    return text(_LAST.format(ids=_IDS[dialect]))


class LastOutcome(NamedTuple):
    plan_id: int
    zone: str
    day: date
    channel: str
    unit_code: str | None
    content_id: int | None
    before: Key | None  # None: the delivery has no entry with a state yet

    def after(
        self,
        state: str,
        event: str,
        channel: str | None = None,
        unit_code: str | None = None,
        content_id: int | None = None,
        *,
        own: bool = False,
    ) -> Key:
        """The key of a new entry: its columns as the delivery has them, or (`own`) as
        the entry has them."""
        if not own:
            channel, unit_code, content_id = self.channel, self.unit_code, self.content_id
        assert channel is not None
        return key_of(
            self.plan_id, self.zone, channel, unit_code, self.day, state, event, content_id
        )


def last_outcomes(conn: Connection, delivery_ids: Iterable[int]) -> dict[int, LastOutcome]:
    """Each delivery's outcome as the log has it now, with what a new entry about it
    counts under."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return {}
    dialect = conn.dialect.name
    value: Any = ids if dialect == "postgresql" else json.dumps(ids)
    out = {}
    for row in conn.execute(_last_statement(dialect), {"ids": value}):
        did, plan, zone, slot, channel, unit, content, a_channel, a_unit, a_content = row[:10]
        state, event = row[10], row[11]
        day = local_day(slot, zone)
        before = (
            key_of(plan, zone, a_channel, a_unit, day, state, event, a_content)
            if state is not None
            else None
        )
        out[did] = LastOutcome(plan, zone, day, channel, unit, content, before)
    return out


def count_first(conn: Connection, rows: Sequence[dict[str, Any]], changes: OutcomeChanges) -> None:
    """The first entries of new deliveries (fan-out): each delivery's first outcome, counted
    per slot and the rest of the key at once (the day is read once per slot)."""
    same = Counter(
        (r["occurrence_id"], r["plan_id"], r["channel"], r.get("unit_code"), r.get("content_id"),
         r["state"], r["event"])
        for r in rows
    )  # fmt: skip
    count_first_grouped(conn, same, changes)


FirstKey = tuple[int, int, str, str | None, int | None, str, str]


def count_first_grouped(
    conn: Connection, same: Mapping[FirstKey, int], changes: OutcomeChanges
) -> None:
    """As `count_first`, from the entries already counted per (occurrence, plan, channel,
    unit, content, state, event)."""
    if not same:
        return
    occ, sch, plan = Occurrence.__table__, Schedule.__table__, Plan.__table__
    query = (
        select(occ.c.id, occ.c.scheduled_for, plan.c.zone)
        .select_from(
            occ.join(sch, sch.c.id == occ.c.schedule_id).join(plan, plan.c.id == sch.c.plan_id)
        )
        .where(occ.c.id.in_(sorted({k[0] for k in same})))
    )
    day_of = {oid: (zone, local_day(at, zone)) for oid, at, zone in conn.execute(query)}
    for (oid, plan_id, channel, unit, content, state, event), n in same.items():
        if oid in day_of:
            zone, day = day_of[oid]
            changes.move(None, key_of(plan_id, zone, channel, unit, day, state, event, content), n)


# --- the log as the source ----------------------------------------------------------------

# Each delivery under its last entry with a state, with its slot and its plan's zone.
COUNT_FROM_LOG = """
SELECT a.plan_id, p.zone, a.channel, coalesce(a.unit_code, ''), o.scheduled_for, a.state,
       a.event, coalesce(a.content_id, 0), count(*)
FROM (SELECT plan_id, delivery_id, max(id) AS id FROM activity_entry
      WHERE delivery_id IS NOT NULL AND state IS NOT NULL {plan}
      GROUP BY plan_id, delivery_id) AS last
JOIN activity_entry AS a ON a.id = last.id
JOIN occurrence AS o ON o.id = a.occurrence_id
JOIN plan AS p ON p.id = a.plan_id
GROUP BY a.plan_id, p.zone, a.channel, coalesce(a.unit_code, ''), o.scheduled_for, a.state,
         a.event, coalesce(a.content_id, 0)
"""


def counted_from_log(conn: Connection, plan_id: int | None = None) -> Counter[Key]:
    """The counts as the log gives them (of one plan, or all)."""
    where, params = ("", {}) if plan_id is None else ("AND plan_id = :plan", {"plan": plan_id})
    counts: Counter[Key] = Counter()
    for plan, zone, channel, unit, slot, state, event, content, n in conn.execute(
        text(COUNT_FROM_LOG.format(plan=where)), params
    ):
        day = local_day(slot, zone)
        counts[key_of(plan, zone, channel, unit, day, state, event, content)] += n
    return counts


def recount(engine: Engine, plan_id: int | None = None) -> int:
    """Rebuild the counts (of one plan, or all) from the log; returns the rows written."""
    with write(engine) as conn:
        counts = counted_from_log(conn, plan_id)
        per_piece: Counter[tuple[Any, ...]] = Counter()
        for k, n in counts.items():
            per_piece[k[:8]] += n
        written = 0
        for table, rows in (
            (OutcomeCount.__table__, counts),
            (OutcomePieceCount.__table__, per_piece),
        ):
            gone = table.delete()
            conn.execute(gone if plan_id is None else gone.where(table.c.plan_id == plan_id))
            values = [dict(zip(COLUMNS, k)) | {"n": n} for k, n in rows.items() if n]  # noqa: B905
            for part in chunks(values, 5000):
                conn.execute(insert(table), list(part))
            written = written or len(values)
    return written


def zone_changed(engine: Engine, plan_id: int, zone: str) -> bool:
    """Were some of the plan's days counted in another zone (the plan's changed since)?"""
    table = OutcomeCount.__table__
    mine = table.c.plan_id == plan_id
    with engine.connect() as conn:  # two looks along the key, either side of the zone
        return any(
            conn.execute(select(table.c.zone).where(mine, other).limit(1)).first() is not None
            for other in (table.c.zone < zone, table.c.zone > zone)
        )


@dataclass(frozen=True)
class Difference:
    key: tuple[Any, ...]  # a Key; without the day for the counts per piece
    in_log: int
    counted: int


def differences(engine: Engine, plan_id: int | None = None) -> list[Difference]:
    """Where the counts (of one plan, or all) and the log disagree."""
    out = []
    with engine.connect() as conn:
        log: dict[Any, int] = counted_from_log(conn, plan_id)
        per_piece: Counter[Any] = Counter()
        for k, n in log.items():
            per_piece[k[:8]] += n
        for table, width, expected in (
            (OutcomeCount.__table__, 9, log),
            (OutcomePieceCount.__table__, 8, per_piece),
        ):
            query = table.select().where(table.c.n != 0)
            if plan_id is not None:
                query = query.where(table.c.plan_id == plan_id)
            counted = {tuple(r[:width]): r.n for r in conn.execute(query)}
            out += [
                Difference(key, expected.get(key, 0), counted.get(key, 0))
                for key in sorted(expected.keys() | counted.keys())
                if expected.get(key, 0) != counted.get(key, 0)
            ]
    return out
