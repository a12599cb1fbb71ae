"""Broadcast sessions: items queued into urban wards' 15-minute sessions from a plan file,
placed where there is room, refused with the session named where there is none, and sent
at the sessions they were placed in, to the wards placed there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels.states import PENDING
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputErrors
from dispatcher.cli.app import app
from dispatcher.models import Delivery
from dispatcher.queries import find_plan
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.preview import plan_programmes, preview
from tests.plans import write_plan

HOAN_KIEM, CUA_NAM = "00070", "00073"  # phường of Hà Nội
# Monday 03/05/2021 in Hà Nội: the wards' sessions at 06:00 and 17:00 (UTC+7).
MORNING = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)
EVENING = datetime(2021, 5, 3, 10, 0, tzinfo=UTC)
BEFORE = MORNING - timedelta(days=1)

ITEMS = (("tin-a", "Tin A", "10m"), ("tin-b", "Tin B", "5m"), ("tin-c", "Tin C", "10m"))


def plan_text(items: tuple[tuple[str, str, str], ...] = ITEMS, extra: str = "") -> str:
    content = "".join(
        f'[[content]]\nkey = "{key}"\ntitle = "{title}"\nstate = "approved"\n\n'
        for key, title, _ in items
    )
    stations = "".join(
        f'[[endpoints]]\nchannel = "station"\naddress = "station:{u}"\nunit = "{u}"\n\n'
        for u in (HOAN_KIEM, CUA_NAM)
    )
    schedules = "".join(
        f"""[[schedules]]
name = "Phát {title}"
content = "{key}"
channel = "station"
targets = {{ units = ["{HOAN_KIEM}", "{CUA_NAM}"] }}
queue = {{ per_week = 1, length = "{length}" }}
start = 2021-05-03
until = 2021-05-03

"""
        for key, title, length in items
    )
    return f"""\
[plan]
number = "12/KH-UBND"
title = "Tuyên truyền phòng cháy chữa cháy ở các phường"
period_start = 2021-05-01
period_end = 2021-05-31
zone = "Asia/Ho_Chi_Minh"

[[sessions]]
name = "Sáng"
unit_kind = "phường"
weekdays = "T2-T6"
start = 06:00:00
length = "15m"

[[sessions]]
name = "Chiều"
unit_kind = "phường"
weekdays = "T2-T6"
start = 17:00:00
length = "15m"

{extra}{content}{stations}{schedules}"""


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_three_items_fill_two_sessions_and_go_out_in_them(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    clock = ManualClock(BEFORE)
    import_plan_file(engine, settings, write_plan(tmp_path, plan_text()), clock.now())
    plan = find_plan(engine, "12/KH-UBND")

    # The preview places A and B in the morning session (15 of 15 minutes), C in the evening.
    rows = preview(engine, plan.id, BEFORE, 3)
    assert [(r.when, r.content, r.units) for r in rows] == [
        (MORNING, "Tin A", 2),
        (MORNING, "Tin B", 2),
        (EVENING, "Tin C", 2),
    ]
    sessions = plan_programmes(engine, settings, plan.id, BEFORE, 3, plan.zone)
    shown = {
        (s.place.code, s.session.name, s.session.at): ([b.title for b in s.items], s.left)
        for s in sessions
    }
    for unit in (HOAN_KIEM, CUA_NAM):
        assert shown[(unit, "Sáng", MORNING)] == (["Tin A", "Tin B"], 0)
        assert shown[(unit, "Chiều", EVENING)] == (["Tin C"], 5 * 60)
    # The next day's sessions are empty and shown so.
    tuesday = MORNING + timedelta(days=1)
    assert shown[(HOAN_KIEM, "Sáng", tuesday)] == ([], 15 * 60)

    # They go out in those sessions: nothing before, A and B at 06:00, C at 17:00.
    coso = Dispatcher(engine, settings, clock, channels={})
    clock.set(MORNING - timedelta(minutes=1))
    coso.tick()
    assert _queued(engine) == []
    clock.set(MORNING + timedelta(seconds=1))
    coso.tick()
    assert _queued(engine) == sorted(
        (MORNING, title, unit) for title in ("Tin A", "Tin B") for unit in (HOAN_KIEM, CUA_NAM)
    )
    clock.set(EVENING + timedelta(seconds=1))
    coso.tick()
    assert sorted(t for t in _queued(engine) if t[0] == EVENING) == [
        (EVENING, "Tin C", HOAN_KIEM),
        (EVENING, "Tin C", CUA_NAM),
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_fourth_item_that_cannot_fit_is_refused_naming_the_session(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    items = (*ITEMS, ("tin-d", "Tin D", "10m"))
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, settings, write_plan(tmp_path, plan_text(items)), BEFORE)
    (error,) = refused.value.errors
    assert error.field == "schedules[3].queue"
    assert "'Tin D' (10 phút)" in error.reason
    assert "buổi 'Chiều' 17:00 ngày 03/05/2021 (15 phút) chỉ còn 5 phút" in error.reason
    assert "đã có: 'Tin C' 10 phút" in error.reason
    # Nothing was written.
    with pytest.raises(Exception, match="12/KH-UBND"):
        find_plan(engine, "12/KH-UBND")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_refuse_when_full_refuses_instead_of_moving_to_the_next_session(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    items = (("tin-a", "Tin A", "10m"), ("tin-b", "Tin B", "10m"))
    text = plan_text(items).replace('length = "10m" }', 'length = "10m", when_full = "refuse" }')
    text = text.replace("until = 2021-05-03\n", "until = 2021-05-07\n")
    # Two 10-minute items, one session a day each: A on Monday morning, B Monday evening.
    clock = ManualClock(BEFORE)
    import_plan_file(engine, settings, write_plan(tmp_path, text), clock.now())
    plan = find_plan(engine, "12/KH-UBND")
    rows = preview(engine, plan.id, BEFORE, 7)
    assert [(r.when, r.content) for r in rows] == [(MORNING, "Tin A"), (EVENING, "Tin B")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_holiday_moves_the_item_to_the_next_working_day(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    holiday = """[[session_exceptions]]
date = 2021-05-03
note = "Nghỉ bù ngày Quốc tế Lao động"

"""
    items = (("tin-a", "Tin A", "10m"),)
    text = plan_text(items, holiday).replace("until = 2021-05-03\n", "until = 2021-05-07\n")
    import_plan_file(engine, settings, write_plan(tmp_path, text), BEFORE)
    plan = find_plan(engine, "12/KH-UBND")
    rows = preview(engine, plan.id, BEFORE, 7)
    assert [(r.when, r.content) for r in rows] == [(MORNING + timedelta(days=1), "Tin A")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_ward_with_sessions_of_its_own_keeps_them_and_config_defaults_fill_the_rest(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    own = f"""[[sessions]]
name = "Trưa"
units = ["{CUA_NAM}"]
weekdays = ["T2"]
start = 11:30:00
length = "30m"

"""
    items = (("tin-a", "Tin A", "10m"),)
    text = plan_text(items, own)
    # Without the kind's sessions in the file: Hoàn Kiếm gets the settings' default.
    for name in ("Sáng", "Chiều"):
        text = text.replace(f'[[sessions]]\nname = "{name}"\nunit_kind = "phường"', "[[x]]")
    text = "\n".join(block for block in text.split("\n\n") if not block.startswith("[[x]]"))
    settings = settings.model_copy(
        update={
            "sessions": [
                {
                    "kind": "ward",
                    "name": "Tối",
                    "weekdays": "T2-CN",
                    "start": "19:00",
                    "length": "20m",
                }
            ]
        }
    )
    settings = Settings.model_validate(settings.model_dump())
    import_plan_file(engine, settings, write_plan(tmp_path, text), BEFORE)
    plan = find_plan(engine, "12/KH-UBND")
    sessions = plan_programmes(engine, settings, plan.id, BEFORE, 2, plan.zone)
    placed = {(s.place.code, s.session.name) for s in sessions if s.items}
    assert placed == {(CUA_NAM, "Trưa"), (HOAN_KIEM, "Tối")}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_schedule_preview_prints_each_sessions_programme_with_the_time_left(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, plan_text()), BEFORE)
    config = tmp_path / "coso.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "schedule",
            "preview",
            "12/KH-UBND",
            "--from",
            "03/05/2021",
            "--days",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Buổi phát" in result.output
    assert "Sáng Thứ hai 03/05/2021 06:00 (15 phút)" in result.output
    assert "1. Tin A (10 phút)" in result.output
    assert "2. Tin B (5 phút)" in result.output
    assert "Phường Cửa Nam" in result.output
    shown = CliRunner().invoke(app, ["--config", str(config), "plan", "show", "12/KH-UBND"])
    assert "Vào buổi phát, 1 lần mỗi tuần, từ 03/05/2021 đến 03/05/2021: 1 buổi" in shown.output


def _queued(engine: Engine) -> list[tuple[datetime, str, str]]:
    from content.models import ContentItem

    D, C = Delivery.__table__, ContentItem.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.c.scheduled_for, C.c.title, D.c.unit_code)
            .join(C, C.c.id == D.c.content_id)
            .where(D.c.state == PENDING)
        ).all()
    return sorted(
        (r[0].replace(tzinfo=UTC) if r[0].tzinfo is None else r[0], r[1], r[2]) for r in rows
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_exported_plan_keeps_its_queue_and_imports_again_unchanged(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from schedules.plan_export import plan_document, stored_plan
    from schedules.plan_export import plan_text as exported_text
    from schedules.plan_import.update import check_update

    import_plan_file(engine, settings, write_plan(tmp_path, plan_text()), BEFORE)
    stored = stored_plan(engine, "12/KH-UBND")
    assert stored is not None
    text = exported_text(plan_document(stored))
    assert "[schedules.queue]" in text or "queue = " in text
    again = tmp_path / "again.toml"
    again.write_text(text)
    change = check_update(engine, settings, again, BEFORE)
    assert change.changes == ()


def test_a_player_offline_plays_its_sessions_programme_in_order(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Three items queued into one commune's morning session, the priority one last: the
    players' programme (sync) carries the session, and a player with no link plays it in
    the session's order: priority first, then as queued."""

    from channels.loudspeaker import protocol as p
    from channels.loudspeaker.player.core import Player, StateFile
    from channels.loudspeaker.programme import programmes
    from channels.loudspeaker.signing import command_key, sign
    from dispatcher.host import EngineHost
    from tests.loudspeakers import CountingSink, clip, speaker_settings

    settings = speaker_settings(settings, broker_url, tmp_path)
    items = [("c0", "Tin thường 1", "normal", 440), ("c1", "Tin thường 2", "normal", 550),
             ("c2", "Tin ưu tiên", "priority", 660)]  # fmt: skip
    content = "".join(
        f'[[content]]\nkey = "{key}"\nkind = "audio"\ntitle = "{title}"\nstate = "approved"\n'
        f'audio = "{clip(tmp_path, 15.0, freq)}"\n\n'
        for key, title, _, freq in items
    )
    schedules = "".join(
        f'[[schedules]]\nname = "{title}"\ncontent = "{key}"\nchannel = "loudspeaker"\n'
        f'targets = {{ units = ["06040"] }}\nqueue = {{ per_week = 1 }}\n'
        f'start = 2021-05-03\nuntil = 2021-05-03\npriority = "{priority}"\n\n'
        for key, title, priority, _ in items
    )
    text = f"""\
[plan]
number = "14/KH-UBND"
title = "Buổi sáng ở xã Thất Khê"
period_start = 2021-05-01
period_end = 2021-05-31

[[sessions]]
name = "Sáng"
units = ["06040"]
weekdays = "T2-T7"
start = 06:00:00
length = "1m"

{content}[[endpoints]]
channel = "loudspeaker"
address = "loa-06040"
unit = "06040"

{schedules}"""
    import_plan_file(engine, settings, write_plan(tmp_path, text), BEFORE)
    host = EngineHost(engine, settings, ManualClock(BEFORE))
    entries = programmes(host, BEFORE, timedelta(hours=48))["loa-06040"]
    assert [e["not_before"] for e in entries] == [p.stamp(MORNING)] * 3
    titles = {e["media"]["sha256"]: e["title"] for e in entries}
    for e in entries:
        e["media"]["url"] = f"http://127.0.0.1:9/media/{e['media']['sha256']}"

    class Instant(CountingSink):  # each clip ends at once: the next one's turn comes
        def done(self) -> bool:
            return True

        def remaining(self) -> float:
            return 0.0

    key = command_key(b"session-test-secret-0123456789ab", "loa-06040", 0)
    sink = Instant()
    player = Player(
        "loa-06040", sink, tmp_path / "player", StateFile(None), lambda *_: True,
        lambda *_: None, key=key, media_origin="http://127.0.0.1:9",
    )  # fmt: skip
    sync = {"type": p.SYNC, "generated_at": p.stamp(BEFORE), "entries": entries}
    assert player.handle(sign(sync, "loa-06040", key, 0, BEFORE), BEFORE)
    for sha in titles:
        player.media_ready(sha, None, BEFORE)
    for second in range(0, 5):  # the link is down: only the player's own clock runs
        player.tick(MORNING + timedelta(seconds=second))
    played = [titles[name.removesuffix(".mp3")] for name, _ in sink.played]
    assert played == ["Tin ưu tiên", "Tin thường 1", "Tin thường 2"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_queued_schedule_switched_back_on_after_its_room_was_taken_is_refused(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from coso.errors import InputError
    from schedules.editing import set_enabled
    from schedules.models import Schedule

    items = (("tin-a", "Tin A", "10m"),)
    import_plan_file(engine, settings, write_plan(tmp_path, plan_text(items)), BEFORE)
    with engine.connect() as conn:
        first = conn.scalar(select(Schedule.__table__.c.id))
    set_enabled(engine, first, False, BEFORE)
    # While it is off, another plan fills the wards' morning session.
    # (the same sessions written again, as they are, are accepted).
    text = plan_text((("tin-x", "Tin X", "15m"),)).replace("12/KH-UBND", "13/KH-UBND")
    (tmp_path / "x").mkdir()
    import_plan_file(engine, settings, write_plan(tmp_path / "x", text), BEFORE)
    with pytest.raises(InputError) as refused:
        set_enabled(engine, first, True, BEFORE)
    assert "'Sáng' Thứ hai 03/05/2021 06:00" in refused.value.reason
    assert "chỉ còn 0 giây" in refused.value.reason


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_update_adding_an_item_keeps_the_others_where_they_are(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Tin B went to the evening because another plan's Tin X filled the morning; Tin X is
    then switched off. An update adding Tin A puts it in the now empty morning, and Tin B
    stays in the evening: a queued schedule the update leaves as it was is not placed again
    (placed again, B would take the morning in the check, A the evening, and the evening
    would hold both)."""
    from schedules.editing import set_enabled
    from schedules.models import Schedule
    from schedules.plan_import.update import apply_update, check_update

    x_plan = plan_text((("tin-x", "Tin X", "15m"),)).replace("12/KH-UBND", "13/KH-UBND")
    (tmp_path / "x").mkdir()
    import_plan_file(engine, settings, write_plan(tmp_path / "x", x_plan), BEFORE)
    b_only = plan_text((("tin-b", "Tin B", "10m"),))
    import_plan_file(engine, settings, write_plan(tmp_path, b_only), BEFORE)
    S = Schedule.__table__
    with engine.connect() as conn:
        x_id = conn.scalar(select(S.c.id).where(S.c.name == "Phát Tin X"))
    set_enabled(engine, x_id, False, BEFORE)

    both = plan_text((("tin-b", "Tin B", "10m"), ("tin-a", "Tin A", "10m")))
    (tmp_path / "u").mkdir()
    change = check_update(engine, settings, write_plan(tmp_path / "u", both), BEFORE)
    assert [(c.section, c.action) for c in change.changes] == [
        ("content", "added"),
        ("schedules", "added"),
    ]
    apply_update(engine, change, "bien-tap", BEFORE)
    plan = find_plan(engine, "12/KH-UBND")
    rows = preview(engine, plan.id, BEFORE, 2)
    assert [(r.when, r.content) for r in rows] == [(MORNING, "Tin A"), (EVENING, "Tin B")]
    for s in plan_programmes(engine, settings, plan.id, BEFORE, 2, plan.zone):
        assert s.left >= 0, s


def test_an_update_that_only_adds_a_session_and_a_holiday_writes_them(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """A file that changes nothing but its sessions still has changes to show and apply."""
    from schedules.plan_import.update import apply_update, check_update
    from schedules.session_store import all_changes, all_defs

    import_plan_file(engine, settings, write_plan(tmp_path, plan_text()), BEFORE)
    noon = (
        '[[sessions]]\nname = "Trưa"\nunit_kind = "phường"\nweekdays = "T7"\n'
        'start = 11:00:00\nlength = "20m"\n\n'
        '[[session_exceptions]]\ndate = 2021-05-19\nnote = "Ngày sinh Chủ tịch Hồ Chí Minh"\n\n'
    )
    (tmp_path / "u").mkdir()
    change = check_update(
        engine, settings, write_plan(tmp_path / "u", plan_text(extra=noon)), BEFORE
    )
    assert [(c.section, c.action) for c in change.changes] == [
        ("sessions", "added"),
        ("sessions", "added"),
    ]
    assert "Trưa" in change.changes[0].description
    assert "19/05/2021" in change.changes[1].description
    apply_update(engine, change, "bien-tap", BEFORE)
    assert "Trưa" in {d.name for d in all_defs(engine, settings)}
    assert any(c.day.isoformat() == "2021-05-19" for c in all_changes(engine))
    again = check_update(
        engine, settings, write_plan(tmp_path / "u", plan_text(extra=noon)), BEFORE
    )
    assert again.changes == ()
