"""Planning in the console, as an editor and an approver do it: a new plan, an audio item
(checked and prepared as `coso content audio` does), its approval of an exact version, a
schedule from the timing form read back in words, an edit of approved content that keeps
the approved version going out, and a plan file that changes the plan after confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from channels.endpoints import add_endpoints
from content.models import ContentItem
from coso.config import Settings
from dispatcher.cli.demo import demo_chime
from dispatcher.web.app import create_app
from schedules.models import Schedule
from tests.conftest import ServerThread
from tests.console import Session, make_user, post_form, signed_in, token_of

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
NUMBER = "44/KH-UBND"


@pytest.fixture
def console(engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[str]:
    settings.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [{"channel": "web", "address": "bulletin:06040", "unit_code": "06040"}],
        datetime.now(UTC),
    )
    make_user(engine, "bien-tap", ["editor"], ["20"])
    make_user(engine, "duyet", ["approver"], ["20"])
    make_user(engine, "duyet-khac", ["approver"], ["01"])  # Hà Nội: not Lạng Sơn's
    make_user(engine, "xem", ["viewer"], ["20"])
    with ServerThread(create_app(engine, settings)) as server:
        yield server.url


def new_plan(editor: Session) -> None:
    made = post_form(
        editor,
        "/plans/new",
        "/plans/new",
        {
            "number": NUMBER,
            "title": "Tuyên truyền phòng chống thiên tai",
            "period_start": "01/05/2021",
            "period_end": "31/12/2021",
            "target_channel": "web",
            "target_count": "2",
            "target_per": "week",
            "target_units": "20",
        },
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"/plans/{NUMBER}"


def add_audio_item(editor: Session, tmp_path: Path) -> None:
    wav = tmp_path / "ban-tin.wav"
    demo_chime().export(wav, format="wav").close()
    page = editor.get(f"/plans/{NUMBER}")
    added = editor.post(
        f"/uploads/plans/{NUMBER}/content",
        data={
            "csrf_token": token_of(page),
            "key": "ban-tin",
            "kind": "audio",
            "title": "Bản tin phòng chống bão",
        },
        files={"audio": ("ban-tin.wav", wav.read_bytes(), "audio/wav")},
    )
    assert added.status_code == 303, added.text


def approve_latest(approver: Session, key: str) -> Session:
    page = approver.get(f"/plans/{NUMBER}/content/{key}")
    version = re.search(r'name="version" value="(\d+)"', page.text)
    checksum = re.search(r'name="checksum" value="([0-9a-f]+)"', page.text)
    assert version and checksum, page.text
    done = approver.post(
        f"/plans/{NUMBER}/content/{key}/approve",
        data={"csrf_token": token_of(page), "version": version[1], "checksum": checksum[1]},
    )
    assert done.status_code == 303, done.text
    return approver


def test_editor_plans_and_approver_approves_in_the_browser(
    console: str, engine: Engine, tmp_path: Path
) -> None:
    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
        add_audio_item(editor, tmp_path)
        item = editor.get(f"/plans/{NUMBER}/content/ban-tin")
        assert "Chưa có phiên bản nào được duyệt" in item.text
        assert "/console/media/" in item.text  # the approver can listen first
        clip = re.search(r'src="(/console/media/[0-9a-f]{64}\.mp3)"', item.text)
        assert clip and editor.get(clip[1]).headers["content-type"] == "audio/mpeg"
        assert "Phê duyệt" not in item.text  # an editor does not approve
    with signed_in(console, "duyet-khac") as stranger:
        assert stranger.get(f"/plans/{NUMBER}/content/ban-tin").status_code == 403
    with signed_in(console, "duyet") as approver:
        approve_latest(approver, "ban-tin")
        shown = approver.get(f"/plans/{NUMBER}/content/ban-tin")
        assert "Đang phát: phiên bản 1, duyệt bởi duyet" in shown.text
    with signed_in(console, "bien-tap") as editor:
        form = editor.get(f"/plans/{NUMBER}/schedules/new")
        made = editor.post(
            f"/plans/{NUMBER}/schedules/new",
            data={
                "csrf_token": token_of(form),
                "name": "Sáng các ngày trong tuần",
                "content": "ban-tin",
                "channel": "web",
                "units": "20",
                "kind": "weekly",
                "start": "03/05/2021",
                "times": "05:30",
                "weekdays": ["T2", "T3", "T4", "T5", "T6", "T7"],
                "end": "31/12/2021",
                "priority": "priority",
                "validity": "2h",
            },
        )
        assert made.status_code == 303, made.text
        plan = editor.get(f"/plans/{NUMBER}")
        assert "Thứ hai đến thứ bảy, 05:30" in plan.text
        first = editor.get("/")  # the editor's first page: each plan's progress this period
        assert "Trang tin điện tử: 0/1 đơn vị đạt 2/tuần" in first.text
        assert "ưu tiên" in plan.text
    with engine.connect() as conn:
        sch = conn.execute(select(Schedule.__table__)).one()
    assert sch.rrule.startswith("FREQ=WEEKLY") and "BYDAY=MO,TU,WE,TH,FR,SA" in sch.rrule
    assert (sch.start_local, sch.priority, sch.validity_seconds) == (
        "2021-05-03T05:30:00",
        "priority",
        7200,
    )


def test_a_bad_schedule_form_names_the_field_and_adds_nothing(console: str, engine: Engine) -> None:
    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
        form = editor.get(f"/plans/{NUMBER}/schedules/new")
        refused = editor.post(
            f"/plans/{NUMBER}/schedules/new",
            data={
                "csrf_token": token_of(form),
                "name": "x",
                "content": "",
                "channel": "web",
                "kind": "weekly",
                "start": "03/05/2021",
                "times": "25:00",
            },
        )
        assert refused.status_code == 400
        assert "times" in refused.text and "25:00" in refused.text
        assert 'value="x"' in refused.text  # the form comes back as filled in
    with engine.connect() as conn:
        assert conn.execute(select(Schedule.__table__)).all() == []


def test_editing_approved_content_keeps_the_approved_version_going_out(
    console: str, engine: Engine, tmp_path: Path
) -> None:
    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
        page = editor.get(f"/plans/{NUMBER}")
        editor.post(
            f"/uploads/plans/{NUMBER}/content",
            data={
                "csrf_token": token_of(page),
                "key": "loi-keu-goi",
                "kind": "article",
                "title": "Lời kêu gọi",
                "body": "Bản thứ nhất.",
            },
        )
    with signed_in(console, "duyet") as approver:
        approve_latest(approver, "loi-keu-goi")
    with signed_in(console, "bien-tap") as editor:
        edited = post_form(
            editor,
            f"/plans/{NUMBER}/content/loi-keu-goi",
            f"/plans/{NUMBER}/content/loi-keu-goi/edit",
            {"title": "Lời kêu gọi", "body": "Bản thứ hai."},
        )
        assert edited.status_code == 303
        shown = editor.get(f"/plans/{NUMBER}/content/loi-keu-goi")
        assert "Đang phát: phiên bản 1" in shown.text and "Bản thứ hai." in shown.text
    with engine.connect() as conn:  # what sending reads
        body = conn.scalar(select(ContentItem.__table__.c.body))
    assert body == "Bản thứ nhất."
    with signed_in(console, "duyet") as approver:
        approve_latest(approver, "loi-keu-goi")
    with engine.connect() as conn:
        assert conn.scalar(select(ContentItem.__table__.c.body)) == "Bản thứ hai."


def test_a_plan_file_that_changes_a_plan_is_shown_then_applied(
    console: str, engine: Engine
) -> None:
    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
        index = editor.get("/")
        changed = f"""\
[plan]
number = "{NUMBER}"
title = "Tuyên truyền phòng chống thiên tai năm 2021"
period_start = 2021-05-01
period_end = 2021-12-31

[[targets]]
channel = "web"
count = 2
per = "week"
units = ["20"]
"""
        shown = editor.post(
            "/plans/update",
            data={"csrf_token": token_of(index)},
            files={"file": ("ke-hoach.toml", changed.encode(), "application/toml")},
        )
        assert shown.status_code == 200, shown.text
        assert "năm 2021" in shown.text and "Áp dụng các thay đổi" in shown.text
        plan = editor.get(f"/plans/{NUMBER}")
        assert "thiên tai năm 2021" not in plan.text  # nothing yet
        fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', shown.text)
        assert fingerprint
        applied = editor.post(
            "/plans/update",
            data={"csrf_token": token_of(shown), "fingerprint": fingerprint[1], "text": changed},
        )
        assert applied.status_code == 303, applied.text
        assert "thiên tai năm 2021" in editor.get(f"/plans/{NUMBER}").text


def test_a_viewer_cannot_plan(console: str) -> None:
    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
    with signed_in(console, "xem") as viewer:
        assert viewer.get("/plans/new").status_code == 403
        assert viewer.get(f"/plans/{NUMBER}/schedules/new").status_code == 403
        page = viewer.get(f"/plans/{NUMBER}")
        assert page.status_code == 200 and "Thêm nội dung" not in page.text
        refused = viewer.post(
            f"/uploads/plans/{NUMBER}/content",
            data={"csrf_token": token_of(page), "key": "k", "title": "t"},
        )
        assert refused.status_code == 403


def test_editor_changes_the_plan_and_its_targets(console: str, engine: Engine) -> None:
    from schedules.models import Plan, PlanTarget

    with signed_in(console, "bien-tap") as editor:
        new_plan(editor)
        changed = post_form(
            editor,
            f"/plans/{NUMBER}/details",
            f"/plans/{NUMBER}/details",
            {
                "title": "Phòng chống thiên tai 2021",
                "issuer": "UBND tỉnh Lạng Sơn",
                "period_start": "01/05/2021",
                "period_end": "30/11/2021",
                "remove_target": "0",
                "target_channel": "web",
                "target_count": "3",
                "target_per": "month",
                "target_units": "06040",
            },
        )
        assert changed.status_code == 303, changed.text
        refused = post_form(
            editor,
            f"/plans/{NUMBER}/details",
            f"/plans/{NUMBER}/details",
            {"title": "x", "period_start": "01/05/2021", "period_end": "01/05/2020"},
        )
        assert refused.status_code == 400 and "period_end" in refused.text
    with engine.connect() as conn:
        plan = conn.execute(select(Plan.__table__)).one()
        targets = conn.execute(select(PlanTarget.__table__)).all()
    assert (plan.title, str(plan.period_end)) == ("Phòng chống thiên tai 2021", "2021-11-30")
    assert [(t.count, t.per, t.unit_codes) for t in targets] == [(3, "month", ["06040"])]
