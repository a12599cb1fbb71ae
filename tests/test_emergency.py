"""One emergency, every channel, by reference: declared once, out on each channel with
emergency priority, read back per channel and unit, cancelled everywhere; drills reach
test endpoints only; bad input is refused naming the field and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from channels.boards.programme import programmes
from channels.endpoints import add_endpoints, mark_test
from channels.web.bulletin import bulletin
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputError
from dispatcher.emergency import (
    EmergencyRequest,
    cancel,
    declare,
    emergency_log,
    find,
    last_states,
    progress,
    update,
)
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.emergencies import Emergency
from schedules.models import Plan, Schedule

NOW = datetime(2021, 5, 2, 16, 0, tzinfo=UTC)  # 23:00 in Hà Nội


@pytest.fixture
def places(engine: Engine, settings: Settings, tmp_path: Path) -> Settings:
    """Two communes, each with a bulletin and a screen; in 06040 one more screen, a test one."""
    settings.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [
            {"channel": "web", "address": "bulletin:06040", "unit_code": "06040"},
            {"channel": "web", "address": "bulletin:06046", "unit_code": "06046"},
            {"channel": "boards", "address": "screen:cho-06040", "unit_code": "06040"},
            {"channel": "boards", "address": "screen:ubnd-06046", "unit_code": "06046"},
            {"channel": "boards", "address": "screen:thu-06040", "unit_code": "06040"},
        ],
        NOW,
    )
    mark_test(engine, "boards", ["screen:thu-06040"], True)
    return settings


def _run(engine: Engine, settings: Settings, clock: ManualClock) -> None:
    dispatcher = Dispatcher(engine, settings, clock)
    dispatcher.tick()
    dispatcher.stop()


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def test_one_emergency_reaches_boards_and_bulletin_and_is_read_by_its_reference(
    engine: Engine, places: Settings
) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine,
        places,
        EmergencyRequest(text="Bão số 3 đổ bộ: ở trong nhà.", units=["06040", "06046"]),
        NOW,
        "chu-tich",
    )
    assert ref == "KC-0001/2021"
    _run(engine, places, clock)
    found = progress(engine, ref, NOW)
    totals = found.totals()
    assert set(totals) == {"boards", "web"}
    assert totals["web"].reached == 2 and totals["web"].failed == 0
    assert totals["boards"].total == 3  # a test screen is a screen too
    assert {r.unit_code for r in found.rows} == {"06040", "06046"}
    posts = bulletin(engine, now=NOW)
    assert [p["pinned"] for p in posts] == [1, 1]
    assert all("Bão số 3" in p["body_html"] for p in posts)
    with engine.connect() as conn:
        screens = list(
            conn.scalars(select(Delivery.endpoint_id).where(Delivery.channel == "boards"))
        )
        shown = programmes(conn, screens, NOW)
    assert len(shown) == 3
    assert all(items[0]["priority"] == "emergency" for items in shown.values())
    # The progress page's counts are the log's.
    assert {c: (t.reached, t.pending, t.failed) for c, t in totals.items()} == {
        c: (v["reached"], v["pending"], v["failed"]) for c, v in last_states(engine, ref).items()
    }
    events = {e.event for e in emergency_log(engine, ref)}
    assert {"emergency_declared", "published"} <= events


def test_cancel_clears_boards_and_unpins_the_bulletin(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine, places, EmergencyRequest(text="Lũ quét", units=["06040"]), NOW, "chu-tich"
    )
    _run(engine, places, clock)
    later = NOW + timedelta(minutes=5)
    cancel(engine, places, ref, now=later, actor="chu-tich", note="nước đã rút")
    with engine.connect() as conn:
        screens = list(
            conn.scalars(select(Delivery.endpoint_id).where(Delivery.channel == "boards"))
        )
        shown = programmes(conn, screens, later)
    assert all(items == [] for items in shown.values())
    assert [p["pinned"] for p in bulletin(engine, now=later)] == [0]
    assert find(engine, ref).state == "cancelled"
    log = emergency_log(engine, ref)
    cancelled = [e for e in log if e.event == "emergency_cancelled"]
    assert {e.channel for e in cancelled} == {"boards", "web"}
    assert all("nước đã rút" in e.detail for e in cancelled)
    with pytest.raises(InputError) as again:
        cancel(engine, places, ref, now=later, actor="chu-tich")
    assert again.value.field == "reference"


def test_a_drill_reaches_only_test_endpoints_and_says_so(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(
        engine,
        places,
        EmergencyRequest(text="Thử còi báo động", units=["06040", "06046"], drill=True),
        NOW,
        "chu-tich",
    )
    _run(engine, places, clock)
    with engine.connect() as conn:
        reached = conn.execute(select(Delivery.channel, Delivery.endpoint_id)).all()
        title = conn.scalar(select(Plan.title).where(Plan.number == ref))
    assert len(reached) == 1 and reached[0].channel == "boards"
    assert "DIỄN TẬP" in (title or "")
    assert bulletin(engine, now=NOW) == []  # no bulletin is a test endpoint
    with engine.connect() as conn:
        shown = programmes(conn, [reached[0].endpoint_id], NOW)[reached[0].endpoint_id]
    assert shown[0]["title"].startswith("[DIỄN TẬP]")
    assert find(engine, ref).drill


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"units": ["99999"]}, "units", "99999"),
        ({"channels": ["fax"]}, "channels", "fax"),
        ({"text": "   "}, "text", "   "),
        ({"until": NOW - timedelta(minutes=1)}, "until", "02/05/2021 22:59"),
        ({"channels": ["loudspeaker"]}, "channels", "loudspeaker"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    engine: Engine, places: Settings, change: dict[str, object], field: str, value: str
) -> None:
    places.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    request = {"text": "Bão", "units": ["06040"], **change}
    with pytest.raises(InputError) as refused:
        declare(engine, places, EmergencyRequest(**request), NOW, "chu-tich")  # type: ignore[arg-type]
    assert refused.value.field == field
    assert str(refused.value.value) == value
    assert _count(engine, Emergency.__table__) == 0
    assert _count(engine, Schedule.__table__) == 0
    assert _count(engine, ActivityEntry.__table__) == 0


def test_loudspeakers_without_audio_are_refused_naming_audio(
    engine: Engine, places: Settings
) -> None:
    places.channels["loudspeaker"] = {"broker": {"url": "mqtt://127.0.0.1:1"}}
    add_endpoints(
        engine, [{"channel": "loudspeaker", "address": "loa-1", "unit_code": "06040"}], NOW
    )
    with pytest.raises(InputError) as refused:
        declare(engine, places, EmergencyRequest(text="Bão", units=["06040"]), NOW, "x")
    assert refused.value.field == "--audio"
    assert "--audio" in str(refused.value)
    assert _count(engine, Emergency.__table__) == 0


def test_new_words_replace_the_old_everywhere(engine: Engine, places: Settings) -> None:
    clock = ManualClock(NOW)
    ref = declare(engine, places, EmergencyRequest(text="Bão cấp 10", units=["06040"]), NOW, "a")
    _run(engine, places, clock)
    later = NOW + timedelta(minutes=2)
    clock.set(later)
    update(engine, places, ref, text="Bão cấp 12, sơ tán ngay", now=later, actor="a")
    _run(engine, places, clock)
    posts = bulletin(engine, now=later)
    assert [p["pinned"] for p in posts] == [1, 0]
    assert "cấp 12" in posts[0]["body_html"]
    assert find(engine, ref).version == 2
    assert progress(engine, ref, later).totals()["web"].reached == 1
