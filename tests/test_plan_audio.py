"""Audio named in a plan file: prepared at import, all or nothing; content a channel can only
play with audio is neither scheduled nor approved without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydub.generators import Sine
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from content.models import MediaAsset
from dispatcher.cli.app import app
from tests.plans import write_plan
from tests.test_bad_input import snapshot

runner = CliRunner()

BROADCAST_PLAN = """\
[plan]
number = "95/KH-UBND"
title = "Phát thanh cải cách hành chính"
period_start = 2021-04-21
period_end = 2021-12-31

[[content]]
key = "ban-tin-loa"
kind = "audio"
title = "Bản tin phát thanh"
state = "approved"
audio = "am-thanh/ban-tin.wav"

[[endpoints]]
channel = "loudspeaker"
address = "loa-06040-01"
unit = "06040"

[[schedules]]
name = "Phát thanh sáng thứ hai"
content = "ban-tin-loa"
channel = "loudspeaker"
targets = { units = ["06040"] }
start = 2021-05-03T06:30:00
"""


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def cli(db_url: str, media: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.setenv("COSO_MEDIA__DIR", str(media))
    monkeypatch.delenv("COSO_CONFIG", raising=False)

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args))
        result.text = result.output.replace("\n", " ")  # type: ignore[attr-defined]
        return result

    return invoke


def recording(path: Path, seconds: float = 2.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Sine(440).to_audio_segment(duration=int(seconds * 1000)).apply_gain(-20).export(
        path, format="wav"
    ).close()
    return path


def stored(media: Path) -> list[str]:
    return sorted(p.name for p in media.glob("*.mp3")) if media.exists() else []


def test_audio_named_in_the_plan_is_prepared_at_import(
    cli, engine: Engine, media: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    recording(tmp_path / "am-thanh" / "ban-tin.wav", 2.0)
    result = cli("plan", "import", str(write_plan(tmp_path, BROADCAST_PLAN)))
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        asset = conn.execute(select(MediaAsset.__table__)).one()
    assert asset.source_name == "ban-tin.wav"
    assert 1.9 <= asset.duration_seconds <= 2.2
    assert stored(media) == [asset.file_name]
    assert (media / asset.file_name).stat().st_size == asset.size_bytes


def test_a_bad_audio_file_is_refused_naming_the_field_and_nothing_is_written(
    cli, engine: Engine, media: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "am-thanh" / "ban-tin.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF not really a recording " * 50)
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, BROADCAST_PLAN)))
    assert result.exit_code == 2
    assert "plan.toml:12: content[0].audio = 'am-thanh/ban-tin.wav': not a readable wav" in (
        result.text
    )
    missing = cli(
        "plan", "import", str(write_plan(tmp_path, BROADCAST_PLAN.replace("ban-tin.wav", "x.wav")))
    )
    assert missing.exit_code == 2
    assert "plan.toml:12: content[0].audio = 'am-thanh/x.wav': file not found" in missing.text
    assert snapshot(engine) == before
    assert stored(media) == []


def test_good_audio_in_a_plan_that_fails_elsewhere_is_not_kept(
    cli, engine: Engine, media: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    recording(tmp_path / "am-thanh" / "ban-tin.wav")
    before = snapshot(engine)
    text = BROADCAST_PLAN.replace('units = ["06040"]', 'units = ["99"]')
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2
    assert "schedules[0].targets.units = '99'" in result.text
    assert snapshot(engine) == before
    assert stored(media) == []


def test_a_schedule_that_must_play_audio_is_refused_without_it_saying_how_to_add_it(
    cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = BROADCAST_PLAN.replace('audio = "am-thanh/ban-tin.wav"\n', "")
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2
    assert (
        "plan.toml:20: schedules[0].content = 'ban-tin-loa': loudspeaker content needs prepared"
        " audio and 'ban-tin-loa' has none: add audio = \"FILE\" to its [[content]]"
    ) in result.text
    assert "coso content audio 95/KH-UBND ban-tin-loa FILE" in result.text
    assert snapshot(engine) == before


def test_without_audio_a_schedule_is_imported_disabled_and_enabled_once_audio_is_approved(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = BROADCAST_PLAN.replace('audio = "am-thanh/ban-tin.wav"\n', "") + "enabled = false\n"
    assert cli("plan", "import", str(write_plan(tmp_path, text))).exit_code == 0
    refused = cli("schedule", "enable", "1")
    assert refused.exit_code == 2
    assert "schedule = 1: its content 'ban-tin-loa' has no audio, which loudspeaker needs" in (
        refused.text
    )
    clip = recording(tmp_path / "ban-tin.wav")
    assert cli("content", "audio", "95/KH-UBND", "ban-tin-loa", str(clip)).exit_code == 0
    waiting = cli("schedule", "enable", "1")  # the approved content still has no audio
    assert waiting.exit_code == 2
    assert "has audio only in draft version 2" in waiting.text
    assert cli("content", "approve", "95/KH-UBND", "ban-tin-loa", "--by", "Phó GĐ").exit_code == 0
    enabled = cli("schedule", "enable", "1")
    assert enabled.exit_code == 0, enabled.output


def test_content_a_schedule_must_play_is_approved_only_with_its_audio(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = (
        BROADCAST_PLAN.replace('audio = "am-thanh/ban-tin.wav"\n', "").replace(
            'state = "approved"', 'state = "draft"'
        )
        + "enabled = false\n"
    )
    assert cli("plan", "import", str(write_plan(tmp_path, text))).exit_code == 0
    refused = cli("content", "approve", "95/KH-UBND", "ban-tin-loa", "--by", "Phó GĐ")
    assert refused.exit_code == 2
    assert (
        "content = 'ban-tin-loa': schedule 1 (Phát thanh sáng thứ hai) plays it on loudspeaker"
        " and it has no audio: add it first with coso content audio 95/KH-UBND ban-tin-loa FILE"
    ) in refused.text
    listed = cli("content", "list", "95/KH-UBND")
    assert "bản nháp" in listed.output
    clip = recording(tmp_path / "ban-tin.wav")
    assert cli("content", "audio", "95/KH-UBND", "ban-tin-loa", str(clip)).exit_code == 0
    approved = cli("content", "approve", "95/KH-UBND", "ban-tin-loa", "--by", "Phó GĐ")
    assert approved.exit_code == 0, approved.output
