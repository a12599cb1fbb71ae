"""Audio prepared for loudspeakers: loudness, format, checks at upload, served per player."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydub.generators import Sine, WhiteNoise
from sqlalchemy import Engine, func, select

from content.audio import decode_audio, loudness, prepare_audio
from content.media import attach_audio, player_token, token_secret
from content.models import MediaAsset
from coso.config import Settings
from coso.errors import InputError
from dispatcher.web.app import create_app
from tests.conftest import ServerThread
from tests.loudspeakers import clip, import_broadcast, slot_in

ROOT = Path(__file__).resolve().parent.parent


def _mp3(tmp_path: Path, name: str, segment) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    segment.export(path, format="mp3", bitrate="128k").close()
    return path


def test_two_prepared_clips_come_out_within_1_lu_of_the_target(
    settings: Settings, tmp_path: Path
) -> None:
    quiet = clip(tmp_path, 3.0, 440, gain=-32)  # wav, far below the target
    loud = _mp3(tmp_path, "loud.mp3", WhiteNoise().to_audio_segment(duration=4000).apply_gain(-3))
    target = settings.media.target_lufs
    assert abs(loudness(decode_audio(quiet)) - target) > 10
    assert abs(loudness(decode_audio(loud)) - target) > 5
    for source in (quiet, loud):
        prepared = prepare_audio(source, settings.media)
        assert abs(prepared.loudness_lufs - target) <= 1.0, source.name
        assert prepared.data[:3] == b"ID3" or prepared.data[:2] == b"\xff\xfb"


def test_jingles_frame_the_clip_and_the_duration_is_recorded(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings.media.dir = str(tmp_path / "media")
    plan_id = import_broadcast(
        engine, settings, tmp_path, ["loa-1"], slot_in(600), clip(tmp_path, 2.0)
    )
    intro, outro = clip(tmp_path, 1.0, 660), clip(tmp_path, 1.5, 880)
    with engine.connect() as conn:
        content_id = conn.scalar(select(MediaAsset.content_id))
    asset = attach_audio(
        engine, settings.media, content_id, clip(tmp_path, 2.0), datetime.now(UTC), intro, outro
    )
    assert 4.4 <= asset.duration_seconds <= 4.7
    stored = Path(settings.media.dir) / asset.file_name
    assert stored.read_bytes() and len(stored.read_bytes()) == asset.size_bytes
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(MediaAsset)) == 1  # replaced
    assert plan_id


def test_truncated_mp3_is_refused_with_a_message_and_nothing_changes(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    whole = _mp3(tmp_path, "whole.mp3", Sine(440).to_audio_segment(duration=4000))
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError, match=r"truncated: its header says 4\.0 s but only 2\.0 s"):
        decode_audio(cut)
    junk = tmp_path / "notes.mp3"
    junk.write_bytes(b"not audio at all " * 200)
    with pytest.raises(InputError, match="not a readable mp3 file"):
        decode_audio(junk)
    with pytest.raises(InputError, match=r"unsupported audio type '\.txt'"):
        decode_audio(_touch(tmp_path / "a.txt"))
    fake = tmp_path / "notes.wav"
    fake.write_bytes(b"RIFF but not a recording " * 200)
    with pytest.raises(InputError, match="not a readable wav file"):
        decode_audio(fake)


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path


def test_cli_refuses_a_truncated_upload_and_keeps_the_previous_audio(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings.media.dir = str(tmp_path / "media")
    import_broadcast(engine, settings, tmp_path, ["loa-1"], slot_in(600), clip(tmp_path, 2.0))
    with engine.connect() as conn:
        before = conn.execute(select(MediaAsset.sha256, MediaAsset.duration_seconds)).one()
    whole = _mp3(tmp_path, "whole.mp3", Sine(440).to_audio_segment(duration=4000))
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    env = {"COSO_DATABASE__URL": settings.database.url, "COSO_MEDIA__DIR": settings.media.dir}
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "content", "audio", "95/KH-UBND", "loa", str(cut)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "truncated" in result.stderr and "cut.mp3" in result.stderr
    with engine.connect() as conn:
        assert conn.execute(select(MediaAsset.sha256, MediaAsset.duration_seconds)).one() == before


def test_media_is_served_only_to_a_player_with_its_own_token(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings.media.dir = str(tmp_path / "media")
    import_broadcast(engine, settings, tmp_path, ["loa-1"], slot_in(600), clip(tmp_path, 2.0))
    with engine.connect() as conn:
        asset = conn.execute(select(MediaAsset)).one()
    token = player_token(token_secret(settings.media), "loa-1")
    with ServerThread(create_app(engine, settings)) as web:
        url = f"{web.url}/media/{asset.file_name}"
        ok = httpx.get(url, headers={"X-Coso-Player": "loa-1", "Authorization": f"Bearer {token}"})
        other = httpx.get(
            url, headers={"X-Coso-Player": "loa-2", "Authorization": f"Bearer {token}"}
        )
        none = httpx.get(url)
    assert ok.status_code == 200 and len(ok.content) == asset.size_bytes
    assert other.status_code == 401 and none.status_code == 401
