"""Changing broadcast sessions by hand (the console, `coso sessions`): a session added or
removed, a day cancelled or a session added on one day, such an exception taken back.

What a person typed is read field by field (each error names its field and value). A change
that takes away a session instance holding queued items (a session removed, a holiday, a
unit given sessions of its own instead of its kind's) moves each of those items to the next
session of its unit with room, within its schedule's range and among the sessions its queue
allows, through `session_queue.place`; an item that finds none makes the whole change
refused, naming it, the session that came nearest and what is in it. Nothing is dropped,
no session overruns.

The checks and the moves are functions of data (`read_*`, `check_*`, `lost`, `rehome`); the
database is read and written at the edges (`add_session`, `remove_session`, `add_change`,
`remove_change`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from content.models import ContentItem
from coso.clock import as_utc, date_text, zone
from coso.config import Settings
from coso.dates import read_date
from coso.db import write
from coso.durations import duration_within
from coso.errors import InputError, InputErrors
from coso.names import check_name
from coso.units import UnitTree, unit_names
from coso.weektimes import clock_text, kind_word, parse_clock, parse_weekdays, weekdays_text
from schedules.models import Plan, Schedule
from schedules.session_moves import Move, Placed, future_placements, load_without, lost, rehome
from schedules.session_store import (
    change_of,
    config_defs,
    def_of,
    stored_groups,
    unit_places,
)
from schedules.sessions import (
    ADD,
    CANCEL,
    DEFAULT,
    GROUP,
    KIND,
    UNIT,
    BroadcastSession,
    DayChange,
    SessionDef,
    SessionException,
    SessionPlacement,
    UnitPlace,
    overlap,
    scope,
)

KINDS = ("phường", "xã", "đặc khu")
MAX_NAME = 40  # "Sáng", "Chiều", "Thời sự tối": a session's name is short
MAX_NOTE = 200
SHORTEST, LONGEST = timedelta(minutes=1), timedelta(hours=24)
EVERYWHERE = ""

BS = BroadcastSession.__table__
SE = SessionException.__table__
SP = SessionPlacement.__table__
S = Schedule.__table__
C = ContentItem.__table__
P = Plan.__table__


# -- what a scope means to people ------------------------------------------------------


def scope_text(where: str, names: Mapping[str, str] | None = None) -> str:
    """ "unit:00073" → "đơn vị Phường Cửa Nam (00073)", "group:…" → "nhóm …", "kind:xã" →
    "mọi xã", "default:xã" → "mặc định cho xã (cấu hình)", "" → "mọi nơi"."""
    if not where:
        return "mọi nơi"
    level, _, value = where.partition(":")
    if level == UNIT:
        name = (names or {}).get(value)
        return f"đơn vị {name} ({value})" if name else f"đơn vị {value}"
    if level == GROUP:
        return f"nhóm {value}"
    if level == KIND:
        return f"mọi {value}"
    return f"mặc định cho {value} (cấu hình)"


def origin_text(d: SessionDef) -> str:
    """Where a unit's session comes from, as a list shows it."""
    return {
        UNIT: "của riêng đơn vị",
        GROUP: f"của nhóm {d.scope.partition(':')[2]}",
        KIND: f"của mọi {d.scope.partition(':')[2]}",
        DEFAULT: "mặc định trong cấu hình",
    }[d.level]


def session_text(d: SessionDef) -> str:
    return f"{d.name} {weekdays_text(d.weekdays)} {clock_text(d.start)} ({d.minutes} phút)"


# -- reading what was typed -------------------------------------------------------------


def read_scope(
    tree: UnitTree,
    unit_kinds: Mapping[str, str],
    groups: Iterable[str],
    *,
    unit: str = "",
    group: str = "",
    kind: str = "",
    required: bool = True,
) -> str:
    """The one place a session or an exception is for: `unit` (a commune-level unit's code;
    `unit_kinds` gives each known code's kind), `group` or `kind`; none: everywhere (an
    exception) or an error (a session)."""
    given = {"unit": unit.strip(), "group": group.strip(), "kind": kind.strip()}
    named = [field for field, value in given.items() if value]
    if len(named) > 1:
        second = named[1]
        raise InputError(
            second,
            given[second],
            f"chỉ chọn một trong đơn vị, nhóm, loại đơn vị"
            f" (đã có {named[0]} = {given[named[0]]!r})",
        )
    if not named:
        if required:
            raise InputError(
                "unit", "", "buổi phát của nơi nào? cho một đơn vị, một nhóm hoặc một loại đơn vị"
            )
        return EVERYWHERE
    if given["unit"]:
        code = tree.current_for(given["unit"])
        found = unit_kinds.get(code, "")
        if found not in KINDS:
            raise InputError(
                "unit",
                given["unit"],
                f"là {found or 'một đơn vị'}, không phải xã, phường hay đặc khu: buổi phát là của"
                " một đơn vị cấp xã (cho mọi xã của tỉnh: dùng nhóm hoặc loại đơn vị)",
            )
        return scope(UNIT, code)
    if given["group"]:
        name = check_name("group", given["group"])
        if name not in set(groups):
            raise InputError("group", given["group"], "không có nhóm nào tên này")
        return scope(GROUP, name)
    word = kind_word(given["kind"])
    if word not in KINDS:
        raise InputError("kind", given["kind"], f"không phải loại đơn vị: {', '.join(KINDS)}")
    return scope(KIND, word)


def read_minutes(field: str, text: str) -> int:
    """A length as typed: "15", "15m", "15 phút", "1h30m" → whole minutes, 1 to 1440."""
    value = text.strip().lower()
    compact = re.sub(r"\s*phút$", "m", value)
    compact = f"{compact}m" if compact.isdigit() else compact
    try:
        length = duration_within(compact, SHORTEST, LONGEST)
    except ValueError:
        raise InputError(
            field, text, "độ dài buổi phát phải như 15 (phút), 45m hoặc 1h30m, từ 1 phút đến 24 giờ"
        ) from None
    if length.total_seconds() % 60:
        raise InputError(field, text, "một buổi phát dài trọn phút")
    return int(length.total_seconds() // 60)


def read_clock(field: str, text: str) -> time:
    try:
        return parse_clock(text)
    except ValueError as exc:
        raise InputError(field, text, str(exc)) from None


def _session_name(field: str, text: str, *, allow_empty: bool = False) -> str:
    return check_name(field, text, allow_empty=allow_empty, max_length=MAX_NAME)


def read_session(where: str, name: str, weekdays: str, start: str, length: str) -> SessionDef:
    """A new session from what was typed; InputErrors with every field that is wrong."""
    errors: list[InputError] = []
    found: dict[str, Any] = {}
    readers = {
        "name": lambda: _session_name("name", name),
        "weekdays": lambda: _weekdays(weekdays),
        "start": lambda: read_clock("start", start),
        "length": lambda: read_minutes("length", length),
    }
    for field, reader in readers.items():
        try:
            found[field] = reader()
        except InputError as exc:
            errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return SessionDef(where, found["name"], found["weekdays"], found["start"], found["length"])


def _weekdays(text: str) -> frozenset[int]:
    try:
        return parse_weekdays(text)
    except ValueError as exc:
        raise InputError("weekdays", text, f"{exc} (viết như T2-T6, hoặc T2 T4 CN)") from None


def read_change(
    where: str,
    day: str,
    action: str,
    session: str,
    start: str,
    length: str,
    note: str,
    today: date,
) -> DayChange:
    """A day's exception from what was typed: `cancel` (every session that day, or the one
    named) or `add` (a session of that name, start and length on that day)."""
    errors: list[InputError] = []
    kind = {"cancel": CANCEL, "add": ADD, "nghỉ": CANCEL, "thêm": ADD}.get(action.strip().lower())
    if kind is None:
        errors.append(InputError("action", action, "chọn cancel (nghỉ) hoặc add (thêm buổi)"))
    found_day: date | None = None
    try:
        found_day = read_date("day", day)
        if found_day < today:
            errors.append(InputError("day", day, f"ngày đã qua (hôm nay là {date_text(today)})"))
    except InputError as exc:
        errors.append(exc)
    name = ""
    try:
        name = _session_name("session", session, allow_empty=kind != ADD)
    except InputError:
        if kind == ADD and not session.strip():
            exc = InputError("session", session, "buổi thêm vào cần một tên (Sáng, Tối)")
        errors.append(exc)
    at: time | None = None
    minutes: int | None = None
    if kind == ADD:
        for field, text in (("start", start), ("length", length)):
            if not text.strip():
                errors.append(InputError(field, text, "buổi thêm vào cần giờ bắt đầu và độ dài"))
                continue
            try:
                if field == "start":
                    at = read_clock(field, text)
                else:
                    minutes = read_minutes(field, text)
            except InputError as exc:
                errors.append(exc)
    elif kind == CANCEL:
        for field, text in (("start", start), ("length", length)):
            if text.strip():
                errors.append(
                    InputError(field, text, "ngày nghỉ không cần giờ hay độ dài (để trống)")
                )
    text = note.strip()
    if len(text) > MAX_NOTE:
        errors.append(InputError("note", f"{text[:40]}…", f"ghi chú dài quá {MAX_NOTE} ký tự"))
    if errors:
        raise InputErrors(errors)
    assert kind is not None and found_day is not None
    return DayChange(found_day, kind, where, name, at, minutes, text)


# -- checks against what is stored ------------------------------------------------------


def check_session(new: SessionDef, stored: Sequence[SessionDef]) -> None:
    """A place has one session of a name, and its sessions do not overlap on a day."""
    for old in stored:
        if old.scope != new.scope:
            continue
        if old.name == new.name:
            raise InputError(
                "name",
                new.name,
                f"{scope_text(new.scope)} đã có buổi {new.name!r} ({session_text(old)}):"
                " xoá buổi đó trước, hoặc đặt tên khác",
            )
        if overlap(old, new):
            raise InputError(
                "start",
                clock_text(new.start),
                f"trùng giờ với buổi {old.name!r} ({session_text(old)}) của"
                f" {scope_text(new.scope)}",
            )


def check_change(
    change: DayChange, stored: Iterable[DayChange], defs: Iterable[SessionDef]
) -> None:
    """Not twice the same; a session cancelled by name is one that exists somewhere."""
    if change in set(stored):
        raise InputError(
            "day", date_text(change.day), f"đã có đúng ngoại lệ này cho {scope_text(change.scope)}"
        )
    if change.kind == CANCEL and change.session and change.session not in {d.name for d in defs}:
        raise InputError(
            "session",
            change.session,
            "không có buổi phát nào tên này (để trống: nghỉ mọi buổi trong ngày)",
        )


# -- the edges: read, change, write ------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a change did: in words, and the items it moved (with their unit's name)."""

    done: str
    moves: tuple[tuple[Move, str], ...] = ()

    def lines(self) -> list[str]:
        return [self.done] + [move.text(name) for move, name in self.moves]


def stored_sessions(engine: Engine) -> list[tuple[int, SessionDef, int | None]]:
    """Every stored session: (row id, the session, the plan that made it or None)."""
    with engine.connect() as conn:
        return [
            (r.id, def_of(r), r.plan_id)
            for r in conn.execute(select(BS).order_by(BS.c.scope, BS.c.start, BS.c.name))
        ]


def stored_changes_by_id(engine: Engine) -> list[tuple[int, DayChange]]:
    with engine.connect() as conn:
        return [
            (r.id, change_of(r))
            for r in conn.execute(select(SE).order_by(SE.c.day, SE.c.scope, SE.c.id))
        ]


def _affected(placed: list[Placed], places: Mapping[str, UnitPlace], where: str) -> list[Placed]:
    return [p for p in placed if places[p.unit].covered_by(where)]


def _plan_change(
    engine: Engine,
    settings: Settings,
    now: datetime,
    where: str,
    defs: list[SessionDef],
    changes: list[DayChange],
    field: str,
    value: object,
) -> tuple[list[Move], dict[str, str]]:
    """The moves a change to `defs` and `changes` (touching the units `where` covers)
    needs, or InputErrors naming what cannot move; with the units' names."""
    with engine.connect() as conn:
        placed = future_placements(conn, now)
    if not placed:
        return [], {}
    places = unit_places(engine, {p.unit for p in placed}, groups=stored_groups(engine))
    placed = _affected(placed, places, where)
    everything = defs + config_defs(settings)
    gone = lost(placed, places, everything, changes)
    if not gone:
        return [], {}
    load = load_without(placed, gone)
    moves = rehome(gone, places, everything, changes, load, now=now, field=field, value=value)
    return moves, {code: p.name for code, p in places.items()}


def _named(engine: Engine, where: str, names: dict[str, str]) -> dict[str, str]:
    """`names` with the name of the unit `where` is for, if it is a unit."""
    level, _, code = where.partition(":")
    if level == UNIT and code not in names:
        names = names | unit_names(engine, [code])
    return names


def _write_moves(conn: Connection, moves: Sequence[Move], now: datetime) -> None:
    """Each moved item's placement, and its schedule's times (RDATEs, local) and validity
    (its longest session) from all its placements."""
    # Out, then in: an item may move into the session another of its schedule's leaves.
    conn.execute(delete(SP).where(SP.c.id.in_([m.item.id for m in moves])))
    if moves:
        conn.execute(
            SP.insert(),
            [
                {
                    "schedule_id": m.item.schedule_id,
                    "unit_code": m.item.unit,
                    "session": m.to.name,
                    "starts_at": m.to.at,
                    "minutes": m.to.minutes,
                    "seconds": m.item.seconds,
                    "placed_at": now,
                }
                for m in moves
            ],
        )
    for schedule_id in sorted({m.item.schedule_id for m in moves}):
        tz = conn.scalar(select(S.c.zone).where(S.c.id == schedule_id))
        rows = conn.execute(
            select(SP.c.starts_at, SP.c.minutes).where(SP.c.schedule_id == schedule_id)
        ).all()
        times = sorted({as_utc(r.starts_at) for r in rows})
        conn.execute(
            update(S)
            .where(S.c.id == schedule_id)
            .values(
                rdates_local=[
                    t.astimezone(zone(tz)).replace(tzinfo=None).isoformat() for t in times
                ],
                validity_seconds=max(r.minutes for r in rows) * 60,
                updated_at=now,
            )
        )


def _outcome(done: str, moves: list[Move], names: Mapping[str, str]) -> Outcome:
    return Outcome(done, tuple((m, names.get(m.item.unit, m.item.unit)) for m in moves))


def add_session(engine: Engine, settings: Settings, new: SessionDef, now: datetime) -> Outcome:
    """Store `new` (checked against the place's sessions); the items of sessions it takes
    over (a unit's own sessions replace its kind's) move."""
    stored = stored_sessions(engine)
    check_session(new, [d for _, d, _ in stored])
    defs = [d for _, d, _ in stored] + [new]
    changes = [c for _, c in stored_changes_by_id(engine)]
    moves, names = _plan_change(engine, settings, now, new.scope, defs, changes, "name", new.name)
    names = _named(engine, new.scope, names)
    with write(engine) as conn:
        conn.execute(
            BS.insert().values(
                scope=new.scope,
                name=new.name,
                weekdays=sorted(new.weekdays),
                start=clock_text(new.start),
                minutes=new.minutes,
                plan_id=None,
                created_at=now,
            )
        )
        _write_moves(conn, moves, now)
    done = f"Đã thêm buổi {session_text(new)} của {scope_text(new.scope, names)}"
    return _outcome(done, moves, names)


def find_session(engine: Engine, where: str, name: str) -> tuple[int, SessionDef]:
    for row_id, d, _ in stored_sessions(engine):
        if d.scope == where and d.name == name:
            return row_id, d
    raise InputError("name", name, f"{scope_text(where)} không có buổi phát nào tên này")


def remove_session(
    engine: Engine, settings: Settings, where: str, name: str, now: datetime
) -> Outcome:
    """Remove the session `name` of `where`; the items placed in its coming instances move
    to the next sessions with room, or nothing changes."""
    row_id, gone = find_session(engine, where, name)
    defs = [d for i, d, _ in stored_sessions(engine) if i != row_id]
    changes = [c for _, c in stored_changes_by_id(engine)]
    moves, names = _plan_change(engine, settings, now, where, defs, changes, "name", name)
    names = _named(engine, where, names)
    with write(engine) as conn:
        conn.execute(delete(BS).where(BS.c.id == row_id))
        _write_moves(conn, moves, now)
    return _outcome(
        f"Đã xoá buổi {session_text(gone)} của {scope_text(where, names)}", moves, names
    )


def add_change(engine: Engine, settings: Settings, change: DayChange, now: datetime) -> Outcome:
    """Store a day's exception; a cancelled session's items move on, or nothing changes."""
    stored = [c for _, c in stored_changes_by_id(engine)]
    defs = [d for _, d, _ in stored_sessions(engine)]
    check_change(change, stored, defs + config_defs(settings))
    moves, names = _plan_change(
        engine, settings, now, change.scope, defs, [*stored, change], "day", date_text(change.day)
    )
    names = _named(engine, change.scope, names)
    with write(engine) as conn:
        conn.execute(
            SE.insert().values(
                day=change.day,
                scope=change.scope,
                session=change.session,
                kind=change.kind,
                start=clock_text(change.start) if change.start else None,
                minutes=change.minutes,
                note=change.note,
                plan_id=None,
                created_at=now,
            )
        )
        _write_moves(conn, moves, now)
    return _outcome(f"Đã ghi: {change_text(change, names)}", moves, names)


def remove_change(engine: Engine, settings: Settings, change_id: int, now: datetime) -> Outcome:
    """Take back a day's exception (a session added that day: its items move on)."""
    stored = stored_changes_by_id(engine)
    found = [c for i, c in stored if i == change_id]
    if not found:
        raise InputError("exception", change_id, "không có ngoại lệ này")
    rest = [c for i, c in stored if i != change_id]
    defs = [d for _, d, _ in stored_sessions(engine)]
    moves, names = _plan_change(
        engine, settings, now, found[0].scope, defs, rest, "day", date_text(found[0].day)
    )
    names = _named(engine, found[0].scope, names)
    with write(engine) as conn:
        conn.execute(delete(SE).where(SE.c.id == change_id))
        _write_moves(conn, moves, now)
    return _outcome(f"Đã bỏ: {change_text(found[0], names)}", moves, names)


def change_text(change: DayChange, names: Mapping[str, str] | None = None) -> str:
    where = scope_text(change.scope, names)
    day = date_text(change.day)
    if change.kind == ADD:
        assert change.start is not None
        text = (
            f"thêm buổi {change.session!r} {clock_text(change.start)} ({change.minutes} phút)"
            f" ngày {day} cho {where}"
        )
    elif change.session:
        text = f"nghỉ buổi {change.session!r} ngày {day} ở {where}"
    else:
        text = f"nghỉ mọi buổi phát ngày {day} ở {where}"
    return f"{text} — {change.note}" if change.note else text


def unit_kinds(engine: Engine, codes: Iterable[str]) -> dict[str, str]:
    """Each known code's kind (xã, phường, tỉnh …)."""
    return {code: p.kind for code, p in unit_places(engine, codes, groups=[]).items() if p.kind}


def group_names(engine: Engine) -> list[str]:
    return sorted(g.name for g in stored_groups(engine))
