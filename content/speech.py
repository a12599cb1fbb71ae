"""Speech for text: Vietnamese text read the Vietnamese way (content.speech_text), spoken
offline by espeak-ng's Vietnamese voice (or a local piper voice named in config), then
prepared exactly like uploaded audio (content.audio: one format, normalised loudness,
checksum, length) and kept in the media folder, marked as synthesised by its voice."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from content.speech_text import spoken_text
from coso.errors import InputError

if TYPE_CHECKING:
    from pydub import AudioSegment
    from sqlalchemy import Engine

    from content.audio import PreparedAudio
    from content.models import ContentVersion
    from coso.config import MediaSettings, Settings, SpeechSettings

log = logging.getLogger(__name__)

# How people read that an item's audio is speech, not a recording.
SYNTHESISED = "giọng đọc tổng hợp"
ESPEAK_INSTALL = "apt-get install espeak-ng"
PIPER_INSTALL = "pip install piper-tts"
TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class SpokenAudio:
    """Speech as prepared and stored: the audio, its file in the media folder, the voice
    and the words the voice was given."""

    prepared: PreparedAudio
    file_name: str
    voice: str
    reading: str

    @property
    def source_name(self) -> str:
        return f"{SYNTHESISED} ({self.voice})"

    @property
    def media(self) -> dict[str, Any]:
        """What a loudspeaker command names: the clip's sha256 and length."""
        return {"sha256": self.prepared.sha256, "duration": self.prepared.duration_seconds}

    def asset_row(self, content_id: int, now: datetime) -> dict[str, object]:
        """Its media_asset row, as content `content_id`'s audio."""
        from content.media import asset_row

        return asset_row(
            content_id, self.prepared, self.file_name, self.source_name, now, self.voice
        )


def voice_name(speech: SpeechSettings) -> str:
    if speech.piper_model:
        return f"piper {Path(speech.piper_model).name.removesuffix('.onnx')}"
    return f"espeak-ng {speech.voice}"


def synthesise(reading: str, speech: SpeechSettings, target: Path) -> None:
    """Speak `reading` into the wav file `target`, with the configured voice."""
    if speech.piper_model:
        _piper(reading, speech, target)
    else:
        _espeak(reading, speech, target)


def _espeak(reading: str, speech: SpeechSettings, target: Path) -> None:
    command = [speech.espeak, "-v", speech.voice, "-s", str(speech.rate), "-b", "1"]
    command += ["-w", str(target)]
    try:
        done = subprocess.run(
            command,
            input=reading.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise InputError(
            "speech.espeak",
            speech.espeak,
            f"chưa cài espeak-ng (giọng đọc tiếng Việt): {ESPEAK_INSTALL}",
        ) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(
            "speech.espeak", speech.espeak, f"espeak-ng không chạy được: {exc}"
        ) from exc
    said = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0 or not target.is_file() or target.stat().st_size <= 44:
        if "voice does not exist" in said:
            raise InputError(
                "speech.voice",
                speech.voice,
                "espeak-ng không có giọng này (espeak-ng --voices=vi liệt kê các giọng tiếng Việt)",
            )
        raise InputError(
            "speech.espeak", speech.espeak, f"espeak-ng không đọc được: {said or done.returncode}"
        )


def _piper(reading: str, speech: SpeechSettings, target: Path) -> None:
    model = Path(speech.piper_model)
    if not model.is_file():
        raise InputError("speech.piper_model", speech.piper_model, "không có tệp giọng đọc này")
    if not Path(f"{model}.json").is_file():
        raise InputError(
            "speech.piper_model",
            speech.piper_model,
            f"thiếu tệp cấu hình của giọng đọc {model.name}.json bên cạnh nó",
        )
    try:
        from piper import PiperVoice  # type: ignore[import-not-found]
    except ImportError as exc:
        raise InputError(
            "speech.piper_model",
            speech.piper_model,
            f"giọng piper cần gói piper-tts, chưa được cài: {PIPER_INSTALL}"
            " (hoặc để trống piper_model để dùng espeak-ng)",
        ) from exc
    try:
        voice = PiperVoice.load(str(model))
        with wave.open(str(target), "wb") as out:
            voice.synthesize_wav(reading, out)
    except Exception as exc:  # a voice file piper cannot use: say so, whatever piper raised
        raise InputError(
            "speech.piper_model", speech.piper_model, f"piper không đọc được: {exc}"
        ) from exc


def chime(settings: MediaSettings) -> AudioSegment:
    """A short two-tone chime before an announcement, made here (no file to ship)."""
    from pydub import AudioSegment
    from pydub.generators import Sine

    def tone(hz: float, ms: int) -> AudioSegment:
        return (
            Sine(hz, sample_rate=settings.sample_rate)
            .to_audio_segment(duration=ms, volume=-6)
            .fade_in(15)
            .fade_out(ms // 2)
        )

    pause = AudioSegment.silent(duration=120, frame_rate=settings.sample_rate)
    rest = AudioSegment.silent(duration=400, frame_rate=settings.sample_rate)
    return tone(880, 380) + pause + tone(660, 520) + rest


def levelled(audio: AudioSegment, target_lufs: float) -> AudioSegment:
    """Speech brought to `target_lufs` although its peaks stand far above its loudness: the
    gain is applied and the peaks are limited (5 ms blocks, gain eased between them) so that
    normalising like uploaded audio, which stops at the peak ceiling, reaches the target."""
    import numpy as np

    from content.audio import PEAK_CEILING_DBFS, loudness

    full = float(1 << (8 * audio.sample_width - 1))
    ceiling = 10 ** ((PEAK_CEILING_DBFS - 1.0) / 20)  # room for the mp3 encoder's overshoot
    block = max(1, audio.frame_rate // 200)
    x = np.array(audio.get_array_of_samples(), dtype=np.float64) / full
    for _ in range(3):  # limiting lowers the loudness a little: measure and lift again
        current = loudness(audio._spawn((x * full).astype(np.int16).tobytes()))
        if not np.isfinite(current) or abs(target_lufs - current) < 0.2:
            break
        x = x * 10 ** ((target_lufs - current) / 20)
        padded = np.pad(np.abs(x), (0, -len(x) % block))
        peaks = padded.reshape(-1, block).max(axis=1)
        reduction = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-9))
        reduction = np.minimum(reduction, np.minimum(np.roll(reduction, 1), np.roll(reduction, -1)))
        centres = np.arange(len(reduction)) * block + block / 2
        x = np.clip(x * np.interp(np.arange(len(x)), centres, reduction), -ceiling, ceiling)
    return audio._spawn((x * full).astype(np.int16).tobytes())


def prepare_speech(
    text: str, settings: Settings, *, chime_first: bool = False
) -> tuple[PreparedAudio, str, str]:
    """Speech for `text`, prepared like uploaded audio: (the audio, the voice, the words
    the voice was given)."""
    from content.audio import decode_audio, prepare_segments

    reading = spoken_text(text, settings.speech.abbreviations)
    if not any(c.isalnum() for c in reading):
        raise InputError("text", text[:60], "không có chữ nào để đọc")
    with tempfile.TemporaryDirectory(prefix="coso-speech-") as folder:
        spoken = Path(folder) / "speech.wav"
        synthesise(reading, settings.speech, spoken)
        voice = decode_audio(spoken, "speech").set_sample_width(2)
        segments = [levelled(voice, settings.media.target_lufs)]
    if chime_first:
        segments.insert(0, chime(settings.media))
    return prepare_segments(segments, settings.media), voice_name(settings.speech), reading


def speech_for(engine: Engine, settings: Settings, text: str, *, chime: bool) -> SpokenAudio:
    """Speech for `text` (an emergency's, say), prepared like uploaded audio and kept in the
    media folder under its checksum, after a chime when `chime`; players fetch it as any
    clip. The caller records it in `engine` as its content's audio (SpokenAudio.asset_row)."""
    from content.media import store_audio

    del engine  # the speech is a file; its media_asset row is the caller's
    prepared, voice, reading = prepare_speech(text, settings, chime_first=chime)
    name, _ = store_audio(settings.media, prepared)
    log.info(
        "%s (%s): %.1f s, %.1f LUFS, sha256 %s",
        SYNTHESISED,
        voice,
        prepared.duration_seconds,
        prepared.loudness_lufs,
        prepared.sha256[:12],
    )
    return SpokenAudio(prepared=prepared, file_name=name, voice=voice, reading=reading)


def item_text(title: str, body: str) -> str:
    """What is read of a content item: its title, then its body."""
    title, body = title.strip(), body.strip()
    if not body:
        return title
    return f"{title}{'' if title[-1:] in '.!?:' else '.'}\n{body}"


def speak_content(
    engine: Engine,
    settings: Settings,
    plan_id: int,
    key: str,
    by: str,
    now: datetime,
    *,
    chime: bool = False,
) -> ContentVersion:
    """Speak content `key` (its newest version's title and body) as its audio, in a new
    version: approved content keeps going out as approved until that version is approved.
    A body that is a template (different for each endpoint) is refused: one clip is spoken
    for every loudspeaker."""
    from content.media import asset_row, media_dir, store_audio
    from content.render import used_names
    from content.versions import item_in, media_columns, new_version_in, versions_in
    from coso.db import write
    from coso.names import nfc

    key = nfc(key)
    with engine.connect() as conn:
        item = item_in(conn, plan_id, key)
        latest = versions_in(conn, item)[-1]
        conn.rollback()
    for field, value in (("title", latest.title), ("body", latest.body)):
        names = used_names(value)
        if names:
            raise InputError(
                field,
                value[:60],
                f"dùng biến mẫu ({', '.join(sorted(names))}): giọng đọc cần văn bản cố định,"
                " không đổi theo từng loa",
            )
    prepared, voice, _ = prepare_speech(
        item_text(latest.title, latest.body), settings, chime_first=chime
    )
    name, wrote = store_audio(settings.media, prepared)
    try:
        with write(engine) as conn:
            item = item_in(conn, plan_id, key)
            now_latest = versions_in(conn, item)[-1]
            if now_latest.checksum != latest.checksum:
                raise InputError("content", key, "vừa được người khác sửa; hãy thử lại")
            source = f"{SYNTHESISED} ({voice})"
            row = asset_row(item.id, prepared, name, source, now, voice)
            version = new_version_in(
                conn, item, latest.title, latest.body, media_columns(row), by, now
            )
    except BaseException:
        if wrote:
            (media_dir(settings.media) / name).unlink(missing_ok=True)
        raise
    log.info(
        "%s: %s (%s), %.1f s — phiên bản %d",
        key,
        SYNTHESISED,
        voice,
        prepared.duration_seconds,
        version.version,
    )
    return version
