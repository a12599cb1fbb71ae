"""Broadcast sessions in the console ("Buổi phát"): a session added there is listed with
where it comes from and takes a plan's queued items (the plan's preview shows them); a
commune's operator changes their own commune's sessions and gets 403 on another's; bad
input is refused naming the field and value, with what was typed kept; a holiday moves the
day's items on and the programme shows it; a queued schedule from the schedule form lands
in its session, and one that does not fit is refused naming the session."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.console import make_user, post_form, signed_in
from tests.plans import write_plan
from tests.session_plans import CUA_NAM, HOAN_KIEM, wards_plan

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MONDAY = date(2021, 5, 3)
NOW = datetime(2021, 5, 1, 3, 0, tzinfo=UTC)  # Saturday before
NUMBER = "12/KH-UBND"


@pytest.fixture
def console(engine: Engine, settings: Settings) -> Iterator[tuple[str, ManualClock]]:
    make_user(engine, "quan-tri", ["administrator"], [])
    make_user(engine, "bien-tap", ["editor"], ["01"])  # Hà Nội
    make_user(engine, "van-hanh-cua-nam", ["operator"], [CUA_NAM])
    make_user(engine, "xem-cua-nam", ["viewer"], [CUA_NAM])
    clock = ManualClock(NOW)
    with ServerThread(create_app(engine, settings, clock)) as server:
        yield server.url, clock


def _import(engine: Engine, settings: Settings, tmp_path: Path, **kw: Any) -> None:
    text = wards_plan(MONDAY, **kw)
    import_plan_file(engine, settings, write_plan(tmp_path, text), NOW)


def _text(page: Any) -> str:
    return html.unescape(page.text)


def _add(client: Any, **fields: str) -> Any:
    data = {"unit": "", "group": "", "kind": "", "weekdays": "T2-T6", "back": ""} | fields
    return post_form(client, "/sessions", "/sessions/add", data)


def test_a_session_added_in_the_console_is_listed_and_shows_in_a_plans_preview(
    console: tuple[str, ManualClock], engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    url, _ = console
    with signed_in(url, "van-hanh-cua-nam") as operator:
        page = operator.get("/sessions")
        assert page.status_code == 200 and "Phường Cửa Nam" in page.text
        assert "Chưa có buổi phát nào" in _text(page)
        done = _add(operator, unit=CUA_NAM, name="Trưa", start="11:30", length="30")
        assert done.status_code == 303, done.text
        shown = _text(operator.get(done.headers["location"]))
        assert "Đã thêm buổi Trưa T2, T3, T4, T5, T6 11:30 (30 phút)" in shown
        assert "của riêng đơn vị" in shown
    # A plan queueing an item into Cửa Nam's sessions: it goes to the console's Trưa.
    _import(
        engine,
        settings,
        tmp_path,
        items=(("tin-a", "Tin A", "10m"),),
        sessions=False,
        units=(CUA_NAM,),
    )
    with signed_in(url, "bien-tap") as editor:
        preview = _text(editor.get(f"/plans/{NUMBER}/preview?days=7"))
        assert "Trưa Thứ hai 03/05/2021 11:30 (30 phút)" in preview
        assert "1. Tin A (10 phút)" in preview and "20 phút" in preview


def test_a_commune_operator_changes_their_own_communes_sessions_only(
    console: tuple[str, ManualClock],
) -> None:
    url, _ = console
    with signed_in(url, "van-hanh-cua-nam") as operator:
        other = _add(operator, unit=HOAN_KIEM, name="Trưa", start="11:30", length="30")
        assert other.status_code == 403
        assert operator.get(f"/sessions?unit={HOAN_KIEM}").status_code == 403
        every_ward = _add(operator, kind="phường", name="Trưa", start="11:30", length="30")
        assert every_ward.status_code == 403
        holiday = post_form(
            operator, "/sessions", "/sessions/days/add", {"day": "03/05/2021", "action": "cancel"}
        )
        assert holiday.status_code == 403  # everywhere: an administrator's
        assert (
            _add(operator, unit=CUA_NAM, name="Trưa", start="11:30", length="30").status_code == 303
        )
    with signed_in(url, "xem-cua-nam") as viewer:
        assert viewer.get("/sessions").status_code == 200
        refused = _add(viewer, unit=CUA_NAM, name="Tối", start="19:00", length="30")
        assert refused.status_code == 403
        removed = post_form(
            viewer, "/sessions", "/sessions/remove", {"where": f"unit:{CUA_NAM}", "name": "Trưa"}
        )
        assert removed.status_code == 403
    with signed_in(url, "quan-tri") as admin:
        assert (
            _add(admin, kind="phường", name="Sáng", start="06:00", length="15").status_code == 303
        )
        listed = _text(admin.get(f"/sessions?unit={HOAN_KIEM}"))
        assert "của mọi phường" in listed


def test_bad_input_names_the_field_and_value_and_keeps_what_was_typed(
    console: tuple[str, ManualClock],
) -> None:
    url, _ = console
    with signed_in(url, "van-hanh-cua-nam") as operator:
        refused = _add(
            operator, unit=CUA_NAM, name="Trưa", weekdays="T2-T9", start="25:00", length="30"
        )
        assert refused.status_code == 400
        shown = _text(refused)
        assert "weekdays = 'T2-T9'" in shown and "start = '25:00'" in shown
        assert 'value="Trưa"' in shown and 'value="25:00"' in shown and 'value="T2-T9"' in shown
        day = post_form(
            operator,
            "/sessions",
            "/sessions/days/add",
            {"day": "31/04/2021", "action": "cancel", "unit": CUA_NAM, "note": "Nghỉ bù"},
        )
        assert day.status_code == 400
        shown = _text(day)
        assert "day = '31/04/2021'" in shown and 'value="Nghỉ bù"' in shown
        assert "Chưa có buổi phát nào" in _text(operator.get("/sessions"))


def test_a_holiday_cancels_the_session_and_the_programme_shows_the_items_moved(
    console: tuple[str, ManualClock], engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    url, _ = console
    _import(engine, settings, tmp_path, until=MONDAY + timedelta(days=4))
    with signed_in(url, "quan-tri") as admin:
        done = post_form(
            admin,
            "/sessions",
            "/sessions/days/add",
            {"day": "03/05/2021", "action": "cancel", "note": "Nghỉ bù 1/5", "back": CUA_NAM},
        )
        assert done.status_code == 303, done.text
        shown = _text(admin.get(done.headers["location"]))
        assert "nghỉ mọi buổi phát ngày 03/05/2021 ở mọi nơi — Nghỉ bù 1/5" in shown
        assert "chuyển sang buổi 'Sáng' 06:00 ngày 04/05/2021" in shown
    with signed_in(url, "van-hanh-cua-nam") as operator:
        page = _text(operator.get(f"/sessions?unit={CUA_NAM}&start=03/05/2021&days=7"))
        programme = page.split("Chương trình các buổi", 1)[1].split("Ngày nghỉ, buổi thêm", 1)[0]
        assert "Thứ hai 03/05/2021" not in programme
        tuesday = programme.split("Sáng · Thứ ba 04/05/2021 06:00", 1)[1]
        assert tuesday.index("Tin A") < tuesday.index("Tin B") < tuesday.index("Chiều")
        assert "còn 0 giây" in tuesday.split("Chiều", 1)[0]
        today = _text(operator.get(f"/units/{CUA_NAM}/today?day=04/05/2021"))
        assert "Buổi phát hôm nay" in today and "Tin C — 10 phút" in today
        assert "còn 5 phút" in today
        data = operator.get(f"/units/{CUA_NAM}/today.json?day=04/05/2021").json()
        assert [
            (s["name"], s["seconds_left"], [i["title"] for i in s["items"]])
            for s in data["sessions"]
        ] == [
            ("Sáng", 0, ["Tin A", "Tin B"]),
            ("Chiều", 5 * 60, ["Tin C"]),
        ]


def test_a_queued_schedule_from_the_form_lands_in_its_session_and_one_that_cannot_fit_is_refused(
    console: tuple[str, ManualClock], engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    url, _ = console
    extra = (("tin-d", "Tin D", "10m"), ("tin-e", "Tin E", "5m"))
    text = wards_plan(MONDAY)
    text += "".join(
        f'[[content]]\nkey = "{k}"\ntitle = "{t}"\nstate = "approved"\n\n' for k, t, _ in extra
    )
    import_plan_file(engine, settings, write_plan(tmp_path, text), NOW)
    form = {
        "channel": "station",
        "units": f"{HOAN_KIEM} {CUA_NAM}",
        "mode": "queue",
        "start": "03/05/2021",
        "end": "03/05/2021",
        "per_week": "1",
        "when_full": "next",
        "priority": "normal",
    }
    new = f"/plans/{NUMBER}/schedules/new"
    with signed_in(url, "bien-tap") as editor:
        refused = post_form(
            editor,
            new,
            new,
            form | {"name": "Phát Tin D", "content": "tin-d", "queue_length": "10"},
        )
        assert refused.status_code == 400
        shown = _text(refused)
        assert "'Tin D' (10 phút)" in shown
        assert "buổi 'Chiều' 17:00 ngày 03/05/2021 (15 phút) chỉ còn 5 phút" in shown
        assert "đã có: 'Tin C' 10 phút" in shown
        assert 'value="Phát Tin D"' in shown and 'value="queue" style="width:auto" checked' in shown
        made = post_form(
            editor, new, new, form | {"name": "Phát Tin E", "content": "tin-e", "queue_length": "5"}
        )
        assert made.status_code == 303, _text(made)
    with signed_in(url, "van-hanh-cua-nam") as operator:
        page = _text(operator.get(f"/sessions?unit={CUA_NAM}&start=03/05/2021&days=1"))
        evening = page.split("Chiều · Thứ hai 03/05/2021 17:00", 1)[1]
        assert evening.index("Tin C") < evening.index("Tin E")
        assert "còn 0 giây" in evening.split("</section>", 1)[0]
