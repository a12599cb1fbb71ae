"""The reference player's audio outputs: ffplay and aplay as found on PATH (stand-ins that
record what they were given), and the null sink."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from channels.loudspeaker.player.sinks import NullSink, make_sink
from tests.helpers import wait_for
from tests.loudspeakers import clip


def _stand_in(bin_dir: Path, name: str, body: str) -> Path:
    record = bin_dir / f"{name}.args"
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "$@" > {record}\n{body}\n')
    script.chmod(0o755)
    return record


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ['PATH']}")
    return path


def test_ffplay_gets_the_clip_and_the_volume_and_is_done_when_it_exits(bin_dir: Path) -> None:
    record = _stand_in(bin_dir, "ffplay", "sleep 0.3")
    sink = make_sink("ffplay")
    sink.start(Path("/media/abc.mp3"), 0.3, 60)
    assert not sink.done()
    wait_for(sink.done, 5, "ffplay to finish")
    args = record.read_text().split()
    assert args[-1] == "/media/abc.mp3"
    assert args[args.index("-volume") + 1] == "60"
    assert "-nodisp" in args and "-autoexit" in args


def test_stopping_ends_the_playing_program(bin_dir: Path) -> None:
    _stand_in(bin_dir, "ffplay", "sleep 30")
    sink = make_sink("auto")  # ffplay first
    sink.start(Path("/media/long.mp3"), 30, 80)
    assert not sink.done()
    started = time.monotonic()
    sink.stop()
    assert sink.done() and time.monotonic() - started < 5


def test_aplay_receives_the_clip_decoded_to_wav_at_the_players_volume(
    bin_dir: Path, tmp_path: Path
) -> None:
    heard = tmp_path / "heard.wav"
    record = _stand_in(bin_dir, "aplay", f"cat > {heard}")
    audio = clip(tmp_path, 0.5)
    loud, quiet = make_sink("aplay"), make_sink("aplay")
    loud.start(audio, 0.5, 100)
    wait_for(loud.done, 20, "aplay to finish")
    full = heard.read_bytes()
    quiet.start(audio, 0.5, 10)
    wait_for(quiet.done, 20, "aplay to finish again")
    soft = heard.read_bytes()
    assert "-q" in record.read_text().split()
    assert full[:4] == b"RIFF" and full[8:12] == b"WAVE"
    assert _peak(soft) < _peak(full) / 5  # volume 10 of 100 is quieter


def _peak(wav: bytes) -> int:
    """The loudest 16-bit sample after the WAV's `data` chunk header."""
    start = wav.index(b"data") + 8
    body = wav[start : start + (len(wav) - start) // 2 * 2]
    return max(abs(s) for s in memoryview(body).cast("h"))


def test_an_output_asked_for_but_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither ffplay nor aplay
    with pytest.raises(ValueError, match="ffplay is not installed"):
        make_sink("ffplay")
    assert isinstance(make_sink("auto"), NullSink)
