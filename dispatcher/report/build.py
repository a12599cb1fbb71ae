"""A plan's report for a period and a unit, cut by channel, unit, week, month or content:
the figures (dispatcher.report.figures) of each line, the totals per channel, and each of
the plan's targets against what was done."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, select

from channels import registry
from channels.endpoints import Endpoint, targeted_units
from content.models import ContentItem
from coso.clock import zone
from coso.errors import InputError
from coso.memory import fewer_collections
from coso.units import LEGACY_DATASET, AdminUnit, Organisation, UnitTree, unit_names, unit_tree
from dispatcher.outcome_counts import recount, zone_changed
from dispatcher.report.figures import DONE, Tally, total
from dispatcher.report.outcomes import Outcome, outcomes, reached, slots
from dispatcher.report.periods import Period, month_of, periods_in, promised, week_of
from schedules.models import PlanTarget, Schedule

DIMENSIONS = ("channel", "unit", "week", "month", "content")
CURRENT, LEGACY = "current", "legacy"


class Line(NamedTuple):
    key: tuple[str, ...]  # the value of each dimension, in `Report.by` order (for sorting)
    labels: tuple[str, ...]  # the same as people read them
    tally: Tally


@dataclass(frozen=True)
class UnitShort:
    code: str
    name: str
    achieved: int  # deliveries that reached people in its target periods (capped per period)
    required: int


@dataclass(frozen=True)
class TargetResult:
    channel: str
    channel_title: str
    count: int
    per: str  # day, week, month, plan
    periods: int  # target periods in the report's period
    units: int  # units the target covers (with an endpoint on the channel), in scope
    required: int  # Σ over units and periods of what the target asks (a part: in proportion)
    achieved: int  # Σ over units and periods of min(done, asked)
    done: int  # deliveries that reached people, uncapped
    below: tuple[UnitShort, ...]  # units that missed the count in some period, by name

    @property
    def percent(self) -> float | None:
        """None when the target asks nothing here (no unit it covers, or no whole period)."""
        return round(100 * self.achieved / self.required, 1) if self.required else None


@dataclass(frozen=True)
class Report:
    plan_number: str
    plan_title: str
    issuer: str
    zone: str
    period: Period
    unit: str | None  # the unit or organisation asked for (None: the whole plan)
    unit_name: str
    by: tuple[str, ...]
    units: str  # CURRENT or LEGACY: which units the lines are grouped by
    lines: tuple[Line, ...]
    channels: dict[str, Tally]  # channel → its totals
    channel_titles: dict[str, str]
    targets: tuple[TargetResult, ...]
    generated_at: datetime
    mapping_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> Tally:
        return total(self.channels.values())


def parse_by(text: str | None) -> tuple[str, ...]:
    if not text:
        return ("channel",)
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    for p in parts:
        if p not in DIMENSIONS:
            raise InputError("by", text, f"{p!r} không phải một trong {', '.join(DIMENSIONS)}")
    if len(set(parts)) != len(parts):
        raise InputError("by", text, "một cách chia được nêu hai lần")
    return parts


def scope_units(engine: Engine, tree: UnitTree, unit: str | None) -> tuple[set[str] | None, str]:
    """The units a report covers (None: all) and their name: a unit of any level (with every
    unit below it and itself), a legacy unit (what it became), or an organisation by name:
    the unit it belongs to, else the units its schedules reach."""
    if unit is None:
        return None, ""
    names = unit_names(engine, [unit])
    try:
        return tree.below(unit) | {unit}, names.get(unit, unit)
    except InputError:
        pass
    orgs = Organisation.__table__
    with engine.connect() as conn:
        org = conn.execute(select(orgs).where(orgs.c.name == unit)).first()
    if org is None:
        raise InputError("unit", unit, "không có đơn vị hành chính hay tổ chức nào như vậy")
    if org.unit_code:
        return tree.below(org.unit_code) | {org.unit_code}, org.name
    served = _units_reached(engine, tree, Schedule.__table__.c.organisation_id == org.id)
    if not served:
        raise InputError("unit", unit, "tổ chức này chưa có lịch nào đến một đơn vị")
    return served, org.name


def _bounds(period: Period, tz: str) -> tuple[datetime, datetime]:
    z = zone(tz)
    return (
        datetime.combine(period.start, time(), z),
        datetime.combine(period.end + timedelta(days=1), time(), z),
    )


def build_report(
    engine: Engine,
    plan: Any,
    period: Period,
    *,
    unit: str | None = None,
    by: Sequence[str] = ("channel",),
    units: str = CURRENT,
    now: datetime,
) -> Report:
    with fewer_collections():
        return _build(engine, plan, period, unit, tuple(by), units, now)


def _build(
    engine: Engine,
    plan: Any,
    period: Period,
    unit: str | None,
    by: tuple[str, ...],
    units: str,
    now: datetime,
) -> Report:
    tz = plan.zone
    tree = unit_tree(engine)
    scope, scope_name = scope_units(engine, tree, unit)
    dims = by if "channel" in by else (*by, "channel")
    targets = _targets(engine, plan.id)
    lo, hi = _bounds(period, tz)
    occurrence_ids = [occurrence_id for occurrence_id, _ in slots(engine, plan.id, lo, hi)]
    notes: list[str] = []
    if zone_changed(engine, plan.id, tz):  # the plan moved zone: its days are counted anew
        recount(engine, plan.id)
    rows = outcomes(engine, plan.id, tz, period.start, period.end, by_content="content" in dims)
    unit_of, mapping_note = _unit_grouping(engine, tree, rows, units, notes)
    # Targets are promises to each commune: kept by today's communes whatever the lines show.
    current = unit_of if units == CURRENT else _unit_grouping(engine, tree, rows, CURRENT, [])[0]
    if scope is not None:
        rows = [
            r
            for r in rows
            if r.unit_code and (r.unit_code in scope or unit_of(r.unit_code) in scope)
        ]
    titles = {name: p.title for name, p in registry.plugins().items()}
    on_air = {name for name, p in registry.plugins().items() if p.plays_in_turn}
    content_titles = (
        _content_titles(engine, {r.content_id for r in rows if r.content_id})
        if "content" in dims
        else {}
    )
    groups: dict[tuple[str, ...], Tally] = defaultdict(Tally)
    label_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    keys: dict[tuple[Any, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
    when: dict[date, tuple[date, ...]] = {}  # day → the week and month it is in, as asked
    # channel, state, event → deliveries and their clips' seconds (the channels' totals)
    outcome_totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    last: tuple[Any, ...] | None = None
    tally = Tally()
    on = False
    for r in rows:  # in the order read: the rows of one line's piece come together
        place = (r.channel, r.unit_code, r.day, r.content_id)
        if place != last:
            last = place
            unit_code = unit_of(r.unit_code) if r.unit_code else ""
            bucket = when.get(r.day)
            if bucket is None:
                bucket = when[r.day] = _bucket(dims, r.day)
            line = (r.channel, unit_code, bucket, r.content_id)
            found = keys.get(line)
            if found is None:
                found = keys[line] = _key(dims, r, unit_code, r.day, titles, content_titles)
            key, label_of[found[0]] = found[0], found[1]
            tally = groups[key]
            # Airtime: the clip's length where the item plays out loud (loudspeakers, a
            # station), not where the same content is posted or texted.
            on = r.channel in on_air
        seconds = r.clip_seconds if on else 0.0
        tally.add(r.state, r.event, r.n, seconds)
        total_of = outcome_totals[(r.channel, r.state, r.event)]
        total_of[0] += r.n
        total_of[1] += seconds
    per_channel: dict[str, Tally] = defaultdict(Tally)
    for (channel, state, event), (n, seconds) in outcome_totals.items():
        per_channel[channel].add(state, event, int(n), seconds)
    names = unit_names(engine, {k[dims.index("unit")] for k in groups if "unit" in dims} - {""})
    # Distinct endpoints can be counted for a line by channel, or by channel and unit; not
    # for a week or a content item (those of two weeks are not the sum of each week's).
    countable = set(dims) <= {"channel", "unit"} and (units == CURRENT or "unit" not in dims)
    kept_units = None if scope is None else {r.unit_code for r in rows if r.unit_code}
    asked = (engine, plan.id, occurrence_ids, per_channel.keys(), kept_units)
    totals = reached(*asked, by_unit=False)
    counted = (
        reached(*asked, by_unit=True)
        if countable and "unit" in dims
        else totals  # lines by channel alone: the channels' own totals
    )
    for channel, tally in per_channel.items():
        tally.reached = totals.get((channel, None), 0)
    lines = []
    for key in sorted(groups):
        tally = groups[key]
        labels = label_of[key]
        if "unit" in dims:
            i = dims.index("unit")
            code = key[i]
            labels = (
                *labels[:i],
                f"{names.get(code, code)} ({code})" if code else "—",
                *labels[i + 1 :],
            )
            if countable:
                tally.reached = counted.get((key[dims.index("channel")], code or None), 0)
        elif countable:
            tally.reached = counted.get((key[dims.index("channel")], None), 0)
        lines.append(Line(key, labels, tally))
    return Report(
        plan_number=plan.number,
        plan_title=plan.title,
        issuer=plan.issuer or "",
        zone=tz,
        period=period,
        unit=unit,
        unit_name=scope_name,
        by=dims,
        units=units,
        lines=tuple(lines),
        channels=dict(sorted(per_channel.items())),
        channel_titles=titles,
        targets=tuple(
            target_results(
                engine,
                tree,
                plan,
                period,
                _done_by_target_period(engine, plan, period, rows, targets),
                scope,
                current,
                titles,
                targets,
            )
        ),
        generated_at=now,
        mapping_note=mapping_note,
        notes=notes,
    )


def _targets(engine: Engine, plan_id: int) -> list[Any]:
    T = PlanTarget.__table__
    with engine.connect() as conn:
        return list(conn.execute(select(T).where(T.c.plan_id == plan_id).order_by(T.c.id)))


def _target_window(plan: Any, period: Period) -> tuple[date, date]:
    """The days of the report's period the targets are counted on: those in the plan's."""
    return max(period.start, plan.period_start), min(period.end, plan.period_end)


def _done_by_target_period(
    engine: Engine,
    plan: Any,
    period: Period,
    rows: list[Outcome],
    targets: Sequence[Any],
) -> list[Outcome]:
    """What the targets are counted from: the report's own rows (pieces of weeks in months
    fit any target's weeks and months), unless the targets' days are fewer than the
    report's (the plan's period is shorter) or a target is per day: then the counts of
    those days, per day where asked."""
    start, end = _target_window(plan, period)
    by_day = any(t.per == "day" for t in targets)
    if not targets or end < start or (not by_day and (start, end) == (period.start, period.end)):
        return rows
    return outcomes(engine, plan.id, plan.zone, start, end, by_day=by_day, done_only=True)


def _bucket(dims: Sequence[str], day: date) -> tuple[date, ...]:
    """What of a day the lines are cut by: the Monday of its week, the first of its month."""
    return tuple(
        week_of(day)[0] if d == "week" else month_of(day)[0] for d in dims if d in ("week", "month")
    )


def _key(
    dims: Sequence[str],
    r: Outcome,
    unit_code: str,
    day: date,
    titles: dict[str, str],
    content_titles: dict[int, str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    key: list[str] = []
    labels: list[str] = []
    for d in dims:
        if d == "channel":
            key.append(r.channel)
            labels.append(titles.get(r.channel, r.channel))
        elif d == "unit":
            key.append(unit_code)
            labels.append(unit_code)
        elif d == "week":
            monday, text = week_of(day)
            key.append(monday.isoformat())
            labels.append(text)
        elif d == "month":
            first, text = month_of(day)
            key.append(first.isoformat())
            labels.append(text)
        else:
            key.append(f"{r.content_id:09d}" if r.content_id else "")
            labels.append(content_titles.get(r.content_id or 0, "—"))
    return tuple(key), tuple(labels)


def _unit_grouping(
    engine: Engine, tree: UnitTree, rows: list[Outcome], units: str, notes: list[str]
) -> tuple[Any, str]:
    """How a delivery's unit is shown. CURRENT: the unit as today's list has it (a legacy
    code recorded before the reform, as the one unit it became). LEGACY: the district it
    was in before 1 July 2025, through the mapping (`coso units import-legacy`); a commune
    made of several old districts' parts stays as it is, and the report says so."""
    recorded = {r.unit_code for r in rows if r.unit_code}
    if units == LEGACY:
        U = AdminUnit.__table__
        with engine.connect() as conn:
            districts = set(
                conn.scalars(select(U.c.code).where(U.c.dataset == LEGACY_DATASET, U.c.level == 2))
            )
        if not districts:
            raise InputError(
                "legacy-units", "", "chưa có đơn vị trước 2025: nhập bằng coso units import-legacy"
            )
        was: dict[str, set[str]] = defaultdict(set)
        for old, became in tree.legacy.items():
            if old in districts:
                for new in became:
                    was[new].add(old)
        mapped = {code: next(iter(was[code])) for code in recorded if len(was[code]) == 1}
        for code in sorted(recorded - mapped.keys()):
            why = "thuộc nhiều huyện cũ" if was[code] else "không có trong bảng chuyển đổi"
            notes.append(f"Đơn vị {code} {why}: giữ mã hiện hành.")
        note = (
            "Theo đơn vị hành chính trước 01/07/2025 (cấp huyện), quy đổi từ đơn vị hiện "
            f"hành theo bảng chuyển đổi ({len(tree.legacy)} mã cũ)."
        )
        return (lambda code: mapped.get(code, code)), note
    legacy_seen = {code for code in recorded if code not in tree.current}
    note = "Theo đơn vị hành chính hiện hành (từ 01/07/2025)."
    if not legacy_seen:
        return (lambda code: code), note
    mapped = {}
    for code in legacy_seen:
        became = tree.legacy.get(code, set())
        if len(became) == 1:
            mapped[code] = next(iter(became))
        else:
            why = f"nay thuộc {len(became)} đơn vị mới" if became else "không có trong bảng"
            notes.append(f"Đơn vị cũ {code} {why}: giữ mã cũ.")
    return (lambda code: mapped.get(code, code)), f"{note} Mã cũ quy đổi: {len(mapped)}."


def _content_titles(engine: Engine, ids: set[int]) -> dict[int, str]:
    C = ContentItem.__table__
    with engine.connect() as conn:
        return dict(conn.execute(select(C.c.id, C.c.title).where(C.c.id.in_(sorted(ids)))).all())


def target_results(
    engine: Engine,
    tree: UnitTree,
    plan: Any,
    period: Period,
    rows: list[Outcome],
    scope: set[str] | None,
    unit_of: Any,
    titles: dict[str, str],
    targets: Sequence[Any],
) -> list[TargetResult]:
    """Each of the plan's targets in the report's period (cut to the plan's): per unit it
    covers and per target period, the deliveries that reached people, against the count.
    `rows`: per piece of a week in a month (per day for a target per day), in the days the
    targets are counted on."""
    if not targets:
        return []
    start, end = _target_window(plan, period)
    if end < start:
        return []
    window = Period(start, end, period.label)
    done: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:  # a piece that starts before the window counts from the window's start
        if r.state in DONE and r.unit_code and r.day <= end:
            done[(r.channel, unit_of(r.unit_code))][max(r.day, start)] += r.n
    E = Endpoint.__table__
    with engine.connect() as conn:
        with_endpoints = conn.execute(
            select(E.c.channel, E.c.unit_code)
            .where(E.c.channel.in_({t.channel for t in targets}), E.c.enabled.is_(True))
            .distinct()
        ).all()
    results = []
    plan_period = Period(plan.period_start, plan.period_end, "")
    for t in targets:
        endpoint_units = {unit_of(u) for ch, u in with_endpoints if ch == t.channel and u}
        covered: set[str] = set()
        for code in t.unit_codes or []:
            try:
                covered |= tree.below(code) | {code}
            except InputError:
                covered.add(code)
        if not t.unit_codes:  # the units the plan's own schedules on the channel reach
            S = Schedule.__table__
            mine = (S.c.plan_id == plan.id) & (S.c.channel == t.channel)
            covered = {unit_of(u) for u in _units_reached(engine, tree, mine)}
        wanted = {u for u in endpoint_units if u in covered and (scope is None or u in scope)}
        spans = periods_in(t.per, window, plan_period)
        firsts = [a for a, _, _ in spans]
        achieved = required = uncapped = 0
        short: list[tuple[str, int, int]] = []
        for u in sorted(wanted):
            per_span = [0] * len(spans)
            for day, n in done.get((t.channel, u), {}).items():
                i = bisect_right(firsts, day) - 1
                if i >= 0 and day <= spans[i][1]:
                    per_span[i] += n
            got = need = 0
            for (a, b, full), n in zip(spans, per_span, strict=True):
                asked = promised(t.count, a, b, full)
                uncapped += n
                got += min(n, asked)
                need += asked
            achieved += got
            required += need
            if got < need:
                short.append((u, got, need))
        names = unit_names(engine, [u for u, _, _ in short])
        results.append(
            TargetResult(
                channel=t.channel,
                channel_title=titles.get(t.channel, t.channel),
                count=t.count,
                per=t.per,
                periods=len(spans),
                units=len(wanted),
                required=required,
                achieved=achieved,
                done=uncapped,
                below=tuple(
                    sorted(
                        (UnitShort(u, names.get(u, u), got, need) for u, got, need in short),
                        key=lambda s: s.name,
                    )
                ),
            )
        )
    return results


def _units_reached(engine: Engine, tree: UnitTree, which: Any) -> set[str]:
    """The units the endpoints of the schedules `which` selects are in."""
    S = Schedule.__table__
    with engine.connect() as conn:
        found = conn.execute(select(S.c.channel, S.c.targets).where(which)).all()
    return {u for ch, targets in found for u in targeted_units(engine, tree, ch, targets)}
