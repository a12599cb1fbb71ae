"""Editing approved content makes a draft version; the approved version keeps going out —
deliveries, programmes and players' audio — until the exact new version is approved."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels.web.channel import BulletinPost
from content.approval import find_content, set_state
from content.media import media_for
from content.models import ContentItem
from content.versions import (
    approve,
    attach_draft_audio,
    edit_content,
    list_versions,
    version_checksum,
)
from coso.clock import ManualClock, SystemClock
from coso.config import Settings
from coso.errors import InputError
from dispatcher.cli.app import app
from dispatcher.host import EngineHost
from dispatcher.queries import find_plan
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.helpers import SLOT
from tests.loudspeakers import clip, import_broadcast, slot_in
from tests.plans import WEEKLY_PLAN, write_plan

runner = CliRunner()
THURSDAY = SLOT + timedelta(days=3)
NEW_TITLE = "Thủ tục mới, bản sửa — {{ unit.name }}"
NEW_BODY = "Phiên bản hai: bà con {{ unit.name }} nộp hồ sơ trực tuyến."


def _posts(engine: Engine, after_id: int = 0) -> list[BulletinPost]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(BulletinPost.__table__).where(BulletinPost.__table__.c.id > after_id)
        ).all()
    return [BulletinPost(**r._mapping) for r in rows]


def test_edited_content_goes_out_as_approved_until_the_new_version_is_approved(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), clock.now())
    plan = find_plan(engine, "95/KH-UBND")
    draft = edit_content(engine, plan.id, "cchc", NEW_TITLE, NEW_BODY, "Biên tập viên", clock.now())
    assert (draft.version, draft.state, draft.edited_by) == (2, "draft", "Biên tập viên")

    dispatcher = Dispatcher(engine, settings, clock)
    clock.set(SLOT)
    dispatcher.tick()
    monday = _posts(engine)
    assert len(monday) == 3
    assert all(p.title.startswith("Thủ tục mới — ") for p in monday)
    assert all("Kính gửi bà con" in p.body_html for p in monday)
    assert not any("Phiên bản hai" in p.body_html for p in monday)

    approved_at = clock.now()
    approved = approve(engine, plan.id, "cchc", 2, "Phó Giám đốc", approved_at)
    clock.set(THURSDAY)
    dispatcher.tick()
    thursday = _posts(engine, max(p.id for p in monday))  # type: ignore[type-var]
    assert len(thursday) == 3
    assert all(p.title.startswith("Thủ tục mới, bản sửa — ") for p in thursday)
    assert all("Phiên bản hai: bà con" in p.body_html for p in thursday)

    assert (approved.version, approved.approved_by, approved.approved_at) == (
        2,
        "Phó Giám đốc",
        approved_at,
    )
    assert approved.checksum == version_checksum(NEW_TITLE, NEW_BODY, None)
    item = find_content(engine, plan.id, "cchc")
    assert (item.version, item.state, item.approved_by, item.approved_at) == (
        2,
        "approved",
        "Phó Giám đốc",
        approved_at,
    )
    history = list_versions(engine, plan.id, "cchc")
    assert [(v.version, v.state) for v in history] == [(1, "superseded"), (2, "approved")]


def test_approving_a_version_that_is_not_the_newest_draft_is_refused(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), clock.now())
    plan = find_plan(engine, "95/KH-UBND")
    seen = edit_content(engine, plan.id, "cchc", None, NEW_BODY, "An", clock.now())
    edit_content(engine, plan.id, "cchc", None, NEW_BODY + " Sửa thêm.", "Bình", clock.now())

    with pytest.raises(InputError) as stale:
        approve(engine, plan.id, "cchc", seen.version, "Phó Giám đốc", clock.now())
    assert stale.value.field == "version" and stale.value.value == 2
    assert "phiên bản 3 (sửa bởi Bình)" in stale.value.reason
    with pytest.raises(InputError) as changed:
        approve(engine, plan.id, "cchc", 3, "Phó Giám đốc", clock.now(), checksum=seen.checksum)
    assert changed.value.field == "checksum"
    with pytest.raises(InputError) as nobody:
        approve(engine, plan.id, "cchc", 3, " ", clock.now())
    assert nobody.value.field == "by"

    item = find_content(engine, plan.id, "cchc")
    assert (item.version, item.approved_by) == (1, None)  # imported approved, by nobody named
    assert "Kính gửi bà con" in item.body
    states = [(v.version, v.state) for v in list_versions(engine, plan.id, "cchc")]
    assert states == [(1, "approved"), (2, "superseded"), (3, "draft")]


def test_editing_retired_content_or_changing_nothing_is_refused(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), clock.now())
    plan = find_plan(engine, "95/KH-UBND")
    item = find_content(engine, plan.id, "cchc")
    with pytest.raises(InputError, match="không có thay đổi so với phiên bản 1"):
        edit_content(engine, plan.id, "cchc", item.title, None, "An", clock.now())
    with pytest.raises(InputError) as bad:
        edit_content(engine, plan.id, "cchc", None, "Kính gửi {{ ho_ten }}", "An", clock.now())
    assert bad.value.field == "body" and "ho_ten" in bad.value.reason
    set_state(engine, plan.id, "cchc", "retired", "", clock.now())
    with pytest.raises(InputError, match="retired"):
        edit_content(engine, plan.id, "cchc", None, NEW_BODY, "An", clock.now())
    assert [v.version for v in list_versions(engine, plan.id, "cchc")] == [1]


def test_draft_audio_does_not_replace_what_players_play_until_approved(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings.media.dir = str(tmp_path / "media")
    plan_id = import_broadcast(
        engine, settings, tmp_path, ["loa-1"], slot_in(3600), clip(tmp_path, 2.0)
    )
    with engine.connect() as conn:
        content_id = conn.scalar(select(ContentItem.__table__.c.id))
    approved_sha = media_for(engine, {content_id})[content_id].sha256
    host = EngineHost(engine, settings, SystemClock())

    def programme_audio() -> set[str]:
        now = SystemClock().now()
        return {s.media["sha256"] for s in host.upcoming("loudspeaker", now, timedelta(days=1))}

    now = SystemClock().now()
    draft = attach_draft_audio(
        engine, settings.media, plan_id, "loa", clip(tmp_path, 3.0, 660), "Biên tập viên", now
    )
    assert draft.media_sha256 not in (None, approved_sha)
    assert (Path(settings.media.dir) / f"{draft.media_sha256}.mp3").is_file()
    assert media_for(engine, {content_id})[content_id].sha256 == approved_sha
    assert programme_audio() == {approved_sha}

    approved = approve(engine, plan_id, "loa", draft.version, "Phó Giám đốc", now)
    assert approved.checksum == version_checksum(draft.title, draft.body, draft.media_sha256)
    asset = media_for(engine, {content_id})[content_id]
    assert (asset.sha256, asset.duration_seconds) == (
        draft.media_sha256,
        draft.media_duration_seconds,
    )
    assert programme_audio() == {draft.media_sha256}


def test_cli_edits_lists_versions_and_approves_the_version_named(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    import_plan_file(engine, settings, write_plan(tmp_path, WEEKLY_PLAN), clock.now())
    body = tmp_path / "ban-tin.txt"
    body.write_text(NEW_BODY, encoding="utf-8")
    wide = {"COLUMNS": "250"}

    edited = runner.invoke(
        app,
        ["content", "edit", "95/KH-UBND", "cchc", "--body-file", str(body), "--by", "An"],
        env=wide,
    )
    assert edited.exit_code == 0, edited.output
    assert "phiên bản 2 (bản nháp)" in edited.output
    assert "phiên bản 1 đã duyệt vẫn được gửi" in edited.output
    listed = runner.invoke(app, ["content", "versions", "95/KH-UBND", "cchc"], env=wide)
    assert listed.exit_code == 0, listed.output
    assert "đã duyệt — đang gửi" in listed.output and "bản nháp" in listed.output

    stale = runner.invoke(
        app, ["content", "approve", "95/KH-UBND", "cchc", "--version", "1", "--by", "Phó GĐ"]
    )
    assert stale.exit_code == 2
    assert "version = 1" in stale.output and "phiên bản 2" in stale.output
    approved = runner.invoke(
        app,
        ["content", "approve", "95/KH-UBND", "cchc", "--version", "2", "--by", "Phó GĐ"],
        env=wide,
    )
    assert approved.exit_code == 0, approved.output
    assert "phiên bản 2" in approved.output
    plan = find_plan(engine, "95/KH-UBND")
    item = find_content(engine, plan.id, "cchc")
    assert (item.version, item.body, item.approved_by) == (2, NEW_BODY, "Phó GĐ")
