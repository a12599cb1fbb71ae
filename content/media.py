"""Audio for loudspeakers, prepared once at upload: decoded and checked, converted to one
format, loudness-normalised (ITU-R BS.1770 LUFS, pyloudnorm), optionally framed by intro
and outro jingles, stored under its sha256 and recorded with its duration."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyloudnorm
from sqlalchemy import Engine, select

from content.models import ContentItem, MediaAsset
from coso.config import MediaSettings
from coso.db import insert_ignoring_duplicates, write
from coso.errors import InputError

with warnings.catch_warnings():  # pydub warns about audioop's deprecation on 3.11+
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError

FORMATS = {
    ".mp3": "mp3",
    ".wav": "wav",
    ".ogg": "ogg",
    ".m4a": "mp4",
    ".aac": "aac",
    ".flac": "flac",
}
MIN_SECONDS = 0.5  # shorter clips cannot be measured for loudness
PEAK_CEILING_DBFS = -1.0  # gain is capped so the loudest sample stays below this


def ffmpeg_binary() -> str:
    """Debian's ffmpeg when installed, else the one the imageio-ffmpeg package ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


AudioSegment.converter = ffmpeg_binary()


@dataclass(frozen=True)
class PreparedAudio:
    data: bytes
    sha256: str
    duration_seconds: float
    loudness_lufs: float


def decode_audio(path: Path, field: str = "audio") -> AudioSegment:
    """Decode a file, refusing what is unsupported, corrupt or truncated, with the reason."""
    if not path.is_file():
        raise InputError(field, str(path), "file not found")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            field,
            str(path),
            f"unsupported audio type {path.suffix!r}; use one of {sorted(FORMATS)}",
        )
    try:
        if fmt == "wav":
            audio = _from_wav(path, field)
        else:  # naming the codec spares pydub a call to ffprobe
            audio = AudioSegment.from_file(path, format=fmt, codec=None if fmt != "mp3" else "mp3")
    except (CouldntDecodeError, IndexError, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(field, str(path), f"not a readable {fmt} file: {reason}") from exc
    if len(audio) / 1000 < MIN_SECONDS:
        raise InputError(field, str(path), f"only {len(audio) / 1000:.2f} s of audio")
    if fmt == "mp3":
        _check_complete_mp3(path, len(audio) / 1000, field)
    return audio


def _from_wav(path: Path, field: str) -> AudioSegment:
    """pydub reads PCM wav itself, and asks ffprobe about any other; without ffprobe (not
    every ffmpeg comes with it) a file it cannot read is refused, saying why."""
    try:
        with warnings.catch_warnings():  # pydub warns when it looks for ffprobe in vain
            warnings.simplefilter("ignore", RuntimeWarning)
            return AudioSegment.from_wav(path)
    except FileNotFoundError as exc:  # ffprobe is not installed
        import wave

        try:
            wave.open(str(path)).close()
        except (wave.Error, EOFError) as bad:
            raise InputError(field, str(path), f"not a readable wav file: {bad}") from exc
        raise InputError(
            field, str(path), "a wav file that only ffprobe reads, and it is not installed"
        ) from exc


def _check_complete_mp3(path: Path, decoded: float, field: str) -> None:
    """An mp3 cut short still decodes; its header (Xing/VBRI) says how long it should be."""
    from mutagen import MutagenError
    from mutagen.mp3 import MP3

    try:
        declared = MP3(path).info.length
    except MutagenError as exc:
        raise InputError(field, str(path), f"not a readable mp3 file: {exc}") from exc
    if declared - decoded > max(0.25, declared * 0.02):
        raise InputError(
            field,
            str(path),
            f"truncated: its header says {declared:.1f} s but only {decoded:.1f} s decodes "
            "(an interrupted upload or copy?)",
        )


def loudness(audio: AudioSegment) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4)."""
    samples = np.array(audio.get_array_of_samples(), dtype=np.float64)
    samples /= float(1 << (8 * audio.sample_width - 1))
    if audio.channels > 1:
        samples = samples.reshape((-1, audio.channels))
    return float(pyloudnorm.Meter(audio.frame_rate).integrated_loudness(samples))


def _conform(audio: AudioSegment, settings: MediaSettings) -> AudioSegment:
    return (
        audio.set_frame_rate(settings.sample_rate)
        .set_channels(settings.channels)
        .set_sample_width(2)
    )


def normalise(audio: AudioSegment, target_lufs: float) -> AudioSegment:
    """Apply the gain that brings the clip to `target_lufs`, capped below clipping."""
    measured = loudness(audio)
    if not np.isfinite(measured):
        return audio  # silence: nothing to measure
    gain = target_lufs - measured
    headroom = PEAK_CEILING_DBFS - audio.max_dBFS
    return audio.apply_gain(min(gain, headroom))


def prepare_audio(
    source: Path,
    settings: MediaSettings,
    intro: Path | None = None,
    outro: Path | None = None,
) -> PreparedAudio:
    """Decode, conform and normalise a clip and its jingles, and encode it as mp3."""
    parts = [("intro", intro), ("audio", source), ("outro", outro)]
    segments = [
        normalise(_conform(decode_audio(p, name), settings), settings.target_lufs)
        for name, p in parts
        if p is not None
    ]
    whole = sum(segments[1:], segments[0])
    buffer = io.BytesIO()
    whole.export(buffer, format="mp3", bitrate=settings.bitrate)
    data = buffer.getvalue()
    final = AudioSegment.from_file(io.BytesIO(data), format="mp3", codec="mp3")
    return PreparedAudio(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        duration_seconds=round(len(final) / 1000, 3),
        loudness_lufs=round(loudness(final), 2),
    )


def media_dir(settings: MediaSettings) -> Path:
    path = Path(settings.dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_audio(settings: MediaSettings, prepared: PreparedAudio) -> tuple[str, bool]:
    """Keep prepared audio in the media folder under its checksum: (its file name, whether
    this call wrote it — a caller whose transaction then fails removes what it wrote)."""
    name = f"{prepared.sha256}.mp3"
    target = media_dir(settings) / name
    if target.exists():
        return name, False
    partial = target.with_suffix(".part")
    partial.write_bytes(prepared.data)
    os.replace(partial, target)
    return name, True


def asset_row(
    content_id: int, prepared: PreparedAudio, file_name: str, source_name: str, now: datetime
) -> dict[str, object]:
    """The media_asset row of stored audio."""
    return {
        "content_id": content_id,
        "sha256": prepared.sha256,
        "file_name": file_name,
        "duration_seconds": prepared.duration_seconds,
        "loudness_lufs": prepared.loudness_lufs,
        "size_bytes": len(prepared.data),
        "source_name": source_name,
        "created_at": now,
    }


def attach_audio(
    engine: Engine,
    settings: MediaSettings,
    content_id: int,
    source: Path,
    now: datetime,
    intro: Path | None = None,
    outro: Path | None = None,
) -> MediaAsset:
    """Prepare `source` and make it the audio of content item `content_id` (replacing any)."""
    prepared = prepare_audio(source, settings, intro, outro)
    row = asset_row(content_id, prepared, store_audio(settings, prepared)[0], source.name, now)
    table = MediaAsset.__table__
    with write(engine) as conn:
        if (
            conn.scalar(
                select(ContentItem.__table__.c.id).where(ContentItem.__table__.c.id == content_id)
            )
            is None
        ):
            raise InputError("content", content_id, "no such content item")
        conn.execute(table.delete().where(table.c.content_id == content_id))
        conn.execute(insert_ignoring_duplicates(conn, table), [row])
    return MediaAsset(**row)


def media_for(engine: Engine, content_ids: set[int]) -> dict[int, MediaAsset]:
    table = MediaAsset.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.content_id.in_(content_ids))).all()
    return {r.content_id: MediaAsset(**r._asdict()) for r in rows}


def token_secret(settings: MediaSettings) -> bytes:
    """The key behind players' download tokens: configured, or made once and kept."""
    if settings.token_secret:
        return settings.token_secret.encode()
    path = media_dir(settings) / ".token-secret"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.write_text(secrets.token_hex(32))
        os.replace(partial, path)
    return path.read_text().strip().encode()


def player_token(secret: bytes, player: str) -> str:
    """Each player's own token for downloading media (`coso players token ID`)."""
    return hmac.new(secret, player.encode(), hashlib.sha256).hexdigest()[:40]


def token_valid(secret: bytes, player: str, token: str) -> bool:
    return hmac.compare_digest(player_token(secret, player), token)
