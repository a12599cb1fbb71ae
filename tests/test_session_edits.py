"""Changes to sessions by hand, below the console and the command line: items moved by a
holiday go out at their new sessions (and not at the old ones); a unit's own session
shorter than its kind's keeps what fits and moves the rest in playing order; a change
refused for an item with nowhere to go leaves everything as it was."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from channels.states import PENDING
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputErrors
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.models import Schedule
from schedules.session_edits import add_change, add_session, read_change, remove_session
from schedules.session_moves import Placed, lost
from schedules.session_store import programmes
from schedules.sessions import CANCEL, KIND, UNIT, SessionDef, UnitPlace, scope
from tests.plans import write_plan
from tests.session_plans import CUA_NAM, HOAN_KIEM, at, wards_plan

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MONDAY = date(2021, 5, 3)
BEFORE = datetime(2021, 5, 1, 3, 0, tzinfo=UTC)
ZONE = "Asia/Ho_Chi_Minh"


def _pending(engine: Engine) -> list[tuple[datetime, str]]:
    D = Delivery.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(D.c.scheduled_for, D.c.unit_code).where(D.c.state == PENDING))
        return sorted((r[0].replace(tzinfo=UTC), r[1]) for r in rows)


@SQLITE
def test_items_moved_by_a_holiday_go_out_at_their_new_sessions(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    text = wards_plan(MONDAY, until=MONDAY + timedelta(days=4))
    import_plan_file(engine, settings, write_plan(tmp_path, text), BEFORE)
    holiday = read_change("", "03/05/2021", "cancel", "", "", "", "Nghỉ bù", MONDAY)
    done = add_change(engine, settings, holiday, BEFORE)
    assert len(done.moves) == 6  # three items in each of the two wards
    with engine.connect() as conn:
        rdates = conn.scalars(select(Schedule.__table__.c.rdates_local)).all()
    assert sorted(x for r in rdates for x in r) == [
        "2021-05-04T06:00:00",
        "2021-05-04T06:00:00",
        "2021-05-04T17:00:00",
    ]
    clock = ManualClock(BEFORE)
    coso = Dispatcher(engine, settings, clock, channels={})
    clock.set(at(MONDAY, "17:00") + timedelta(minutes=1))
    coso.tick()
    assert _pending(engine) == []  # nothing on the holiday
    tuesday = MONDAY + timedelta(days=1)
    clock.set(at(tuesday, "06:00") + timedelta(seconds=1))
    coso.tick()
    assert _pending(engine) == sorted([(at(tuesday, "06:00"), u) for u in (HOAN_KIEM, CUA_NAM)] * 2)


@SQLITE
def test_a_units_own_shorter_session_keeps_what_fits_and_moves_the_rest(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    text = wards_plan(MONDAY, until=MONDAY + timedelta(days=4))
    import_plan_file(engine, settings, write_plan(tmp_path, text), BEFORE)
    # Cửa Nam's own Sáng, at the kind's time but 10 minutes, and no Chiều: A stays, B moves
    # to Tuesday's Sáng, C (Chiều is no more) to Wednesday's, Tuesday's having 5 left.
    own = SessionDef(scope(UNIT, CUA_NAM), "Sáng", frozenset(range(1, 6)), time(6), 10)
    done = add_session(engine, settings, own, BEFORE)
    assert [(m.item.title, m.to.name, m.to.at) for m, _ in done.moves] == [
        ("Tin B", "Sáng", at(MONDAY + timedelta(days=1), "06:00")),
        ("Tin C", "Sáng", at(MONDAY + timedelta(days=2), "06:00")),
    ]
    found = programmes(engine, settings, [CUA_NAM], MONDAY, MONDAY, ZONE)
    for p in found:
        assert p.used <= p.session.seconds
    assert [b.title for b in found[0].items] == ["Tin A"]


@SQLITE
def test_a_refused_change_leaves_everything_as_it_was(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, wards_plan(MONDAY)), BEFORE)
    before = programmes(engine, settings, [HOAN_KIEM, CUA_NAM], MONDAY, MONDAY, ZONE)
    with pytest.raises(InputErrors) as refused:
        remove_session(engine, settings, scope(KIND, "phường"), "Sáng", BEFORE)
    # B (5 minutes) would fit beside C in Chiều; A (10) fits nowhere: A alone is named, in
    # each ward, and nothing moves.
    reasons = [e.reason for e in refused.value.errors]
    assert len(reasons) == 2 and all(r.startswith("'Tin A' (10 phút)") for r in reasons)
    assert all("đã có: 'Tin C' 10 phút" in r for r in reasons)
    assert programmes(engine, settings, [HOAN_KIEM, CUA_NAM], MONDAY, MONDAY, ZONE) == before


def test_lost_takes_out_the_last_in_playing_order_when_a_session_shrinks() -> None:
    place = UnitPlace(CUA_NAM, "Phường Cửa Nam", "phường")
    morning = at(MONDAY, "06:00")

    def placed(i: int, title: str, minutes: int, priority: str = "normal") -> Placed:
        return Placed(
            i, i, CUA_NAM, "Sáng", morning, minutes * 60, title, priority, (), MONDAY, ZONE
        )

    items = [placed(1, "A", 5), placed(2, "B", 5), placed(3, "Khẩn", 5, "priority")]
    shorter = [SessionDef(scope(KIND, "phường"), "Sáng", frozenset({1}), time(6), 10)]
    assert [p.title for p in lost(items, {CUA_NAM: place}, shorter, [])] == ["B"]
    holiday = read_change("", "03/05/2021", "cancel", "", "", "", "", MONDAY)
    assert holiday.kind == CANCEL
    assert [p.title for p in lost(items, {CUA_NAM: place}, shorter, [holiday])] == [
        "Khẩn",
        "A",
        "B",
    ]
