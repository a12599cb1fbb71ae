"""A plan's report for a period and a unit, cut by channel, unit, week, month or content:
the figures (dispatcher.report.figures) of each line, the totals per channel, and each of
the plan's targets against what was done."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, select

from channels import registry
from channels.endpoints import Endpoint, resolve_targets
from content.media import media_for
from content.models import ContentItem
from coso.clock import zone
from coso.errors import InputError
from coso.units import LEGACY_DATASET, AdminUnit, Organisation, UnitTree, unit_tree
from dispatcher.report.figures import DONE, Tally, total
from dispatcher.report.outcomes import Outcome, outcomes, reached
from dispatcher.report.periods import Period, month_of, periods_in, promised, week_of
from schedules.models import PlanTarget, Schedule

DIMENSIONS = ("channel", "unit", "week", "month", "content")
CURRENT, LEGACY = "current", "legacy"


@dataclass(frozen=True)
class Line:
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
    names = _unit_names(engine, [unit])
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
    served = _units_reached(engine, Schedule.__table__.c.organisation_id == org.id)
    if not served:
        raise InputError("unit", unit, "tổ chức này chưa có lịch nào đến một đơn vị")
    return served, org.name


def _unit_names(engine: Engine, codes: Sequence[str]) -> dict[str, str]:
    """Names of current and legacy units (a legacy name where the code is gone)."""
    U = AdminUnit.__table__
    wanted = sorted(set(codes))
    names: dict[str, str] = {}
    with engine.connect() as conn:
        for chunk in range(0, len(wanted), 5000):
            for code, name, dataset in conn.execute(
                select(U.c.code, U.c.name, U.c.dataset).where(
                    U.c.code.in_(wanted[chunk : chunk + 5000])
                )
            ):
                if code not in names or dataset == "2025":
                    names[code] = name
    return names


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
    by = tuple(by)
    tz = plan.zone
    tree = unit_tree(engine)
    scope, scope_name = scope_units(engine, tree, unit)
    lo, hi = _bounds(period, tz)
    rows = outcomes(engine, plan.id, lo, hi)
    notes: list[str] = []
    unit_of, mapping_note = _unit_grouping(engine, tree, rows, units, notes)
    # Targets are promises to each commune: kept by today's communes whatever the lines show.
    current = unit_of if units == CURRENT else _unit_grouping(engine, tree, rows, CURRENT, [])[0]
    if scope is not None:
        rows = [
            r
            for r in rows
            if r.unit_code and (r.unit_code in scope or unit_of(r.unit_code) in scope)
        ]
    clips = _clip_seconds(engine, {r.content_id for r in rows if r.content_id})
    titles = {name: p.title for name, p in registry.plugins().items()}
    on_air = {name for name, p in registry.plugins().items() if p.plays_in_turn}
    content_titles = _content_titles(engine, {r.content_id for r in rows if r.content_id})
    local = {}  # slot → local day, computed once per slot
    groups: dict[tuple[str, ...], Tally] = defaultdict(Tally)
    per_channel: dict[str, Tally] = defaultdict(Tally)
    dims = by if "channel" in by else (*by, "channel")
    label_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    for r in rows:
        day = local.get(r.scheduled_for)
        if day is None:
            day = local[r.scheduled_for] = r.scheduled_for.astimezone(zone(tz)).date()
        unit_code = unit_of(r.unit_code) if r.unit_code else ""
        key, labels = _key(dims, r, unit_code, day, titles, content_titles)
        label_of[key] = labels
        # Airtime: the clip's length where the item plays out loud (loudspeakers, a station),
        # not where the same content is posted or texted.
        clip = clips.get(r.content_id) if r.content_id and r.channel in on_air else None
        groups[key].add(r.state, r.event, r.n, clip)
        per_channel[r.channel].add(r.state, r.event, r.n, clip)
    names = _unit_names(engine, {k[dims.index("unit")] for k in groups if "unit" in dims} - {""})
    # Distinct endpoints can be counted for a line by channel, or by channel and unit; not
    # for a week or a content item (those of two weeks are not the sum of each week's).
    countable = set(dims) <= {"channel", "unit"} and (units == CURRENT or "unit" not in dims)
    totals = reached(engine, plan.id, lo, hi, scope, by_unit=False)
    counted = (
        reached(engine, plan.id, lo, hi, scope, by_unit=True)
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
        targets=tuple(target_results(engine, tree, plan, period, rows, scope, current, tz, titles)),
        generated_at=now,
        mapping_note=mapping_note,
        notes=notes,
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


def _clip_seconds(engine: Engine, content_ids: set[int]) -> dict[int, float]:
    return {cid: asset.duration_seconds for cid, asset in media_for(engine, content_ids).items()}


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
    tz: str,
    titles: dict[str, str],
) -> list[TargetResult]:
    """Each of the plan's targets in the report's period (cut to the plan's): per unit it
    covers and per target period, the deliveries that reached people, against the count."""
    T, E = PlanTarget.__table__, Endpoint.__table__
    with engine.connect() as conn:
        targets = conn.execute(select(T).where(T.c.plan_id == plan.id).order_by(T.c.id)).all()
    if not targets:
        return []
    start, end = max(period.start, plan.period_start), min(period.end, plan.period_end)
    if end < start:
        return []
    window = Period(start, end, period.label)
    done: dict[tuple[str, str, date], int] = defaultdict(int)  # (channel, unit, day) → n
    for r in rows:
        if r.state in DONE and r.unit_code:
            day = r.scheduled_for.astimezone(zone(tz)).date()
            done[(r.channel, unit_of(r.unit_code), day)] += r.n
    results = []
    for t in targets:
        with engine.connect() as conn:
            endpoint_units = {
                unit_of(u)
                for u in conn.scalars(
                    select(E.c.unit_code)
                    .where(E.c.channel == t.channel, E.c.enabled.is_(True))
                    .distinct()
                )
                if u
            }
        covered: set[str] = set()
        for code in t.unit_codes or []:
            try:
                covered |= tree.below(code) | {code}
            except InputError:
                covered.add(code)
        if not t.unit_codes:  # the units the plan's own schedules on the channel reach
            S = Schedule.__table__
            mine = (S.c.plan_id == plan.id) & (S.c.channel == t.channel)
            covered = {unit_of(u) for u in _units_reached(engine, mine)}
        wanted = {u for u in endpoint_units if u in covered and (scope is None or u in scope)}
        plan_period = Period(plan.period_start, plan.period_end, "")
        spans = periods_in(t.per, window, plan_period)
        achieved = required = uncapped = 0
        short: list[tuple[str, int, int]] = []
        for u in sorted(wanted):
            got = need = 0
            for a, b, full in spans:
                n = sum(
                    done.get((t.channel, u, a + timedelta(days=i)), 0)
                    for i in range((b - a).days + 1)
                )
                asked = promised(t.count, a, b, full)
                uncapped += n
                got += min(n, asked)
                need += asked
            achieved += got
            required += need
            if got < need:
                short.append((u, got, need))
        unit_names = _unit_names(engine, [u for u, _, _ in short])
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
                        (UnitShort(u, unit_names.get(u, u), got, need) for u, got, need in short),
                        key=lambda s: s.name,
                    )
                ),
            )
        )
    return results


def _units_reached(engine: Engine, which: Any) -> set[str]:
    """The units the endpoints of the schedules `which` selects are in."""
    S = Schedule.__table__
    with engine.connect() as conn:
        found = conn.execute(select(S.c.channel, S.c.targets).where(which)).all()
    return {u for ch, targets in found for _e, u in resolve_targets(engine, ch, targets) if u}
