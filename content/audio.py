"""Audio prepared for loudspeakers, once at upload (content.audio): decoded and checked,
converted to one format, loudness-normalised (ITU-R BS.1770 LUFS, pyloudnorm), optionally
framed by intro and outro jingles, stored under its sha256 and recorded with its duration.
numpy, pyloudnorm and pydub are imported only when audio is prepared, not by a service that
just serves it."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm

from coso.config import MediaSettings
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
        audio = _from_wav(path, field) if fmt == "wav" else _with_ffmpeg(path, fmt, field)
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
            why = (
                str(bad)
                or "phần đầu WAV bị thiếu hoặc bị cắt (tệp rỗng, hoặc không phải âm thanh?)"
            )
            raise InputError(field, str(path), f"not a readable wav file: {why}") from exc
        return _with_ffmpeg(path, "wav", field)


def _with_ffmpeg(path: Path, fmt: str, field: str) -> AudioSegment:
    """Decode with ffmpeg alone (pydub would first ask ffprobe about the file, and the
    ffmpeg that imageio-ffmpeg ships comes without it) to 16-bit PCM wav, which pydub reads
    itself; ffmpeg's own last words are the reason when it cannot."""
    with tempfile.TemporaryDirectory(prefix="coso-audio-") as folder:
        decoded = Path(folder) / "decoded.wav"
        command = [AudioSegment.converter, "-nostdin", "-v", "error", "-f", fmt, "-i", str(path)]
        command += ["-vn", "-acodec", "pcm_s16le", "-f", "wav", str(decoded)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(field, str(path), f"không giải mã được bằng ffmpeg: {exc}") from exc
        said = done.stderr.decode(errors="replace").strip().splitlines()
        if done.returncode != 0 or not decoded.is_file() or decoded.stat().st_size <= 44:
            why = said[-1] if said else "ffmpeg found no audio in it"
            raise InputError(
                field,
                str(path),
                f"không phải tệp âm thanh {fmt} đọc được (not a readable {fmt} file): {why}",
            )
        return AudioSegment.from_wav(decoded)


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
    return prepare_segments([decode_audio(p, name) for name, p in parts if p is not None], settings)


def prepare_segments(segments: list[AudioSegment], settings: MediaSettings) -> PreparedAudio:
    """Clips played one after the other (a jingle, the audio, …), each conformed to the one
    format and normalised, encoded as one mp3 with its checksum, length and loudness."""
    prepared = [normalise(_conform(s, settings), settings.target_lufs) for s in segments]
    whole = sum(prepared[1:], prepared[0])
    buffer = io.BytesIO()
    whole.export(buffer, format="mp3", bitrate=settings.bitrate)
    data = buffer.getvalue()
    final = AudioSegment.from_file(io.BytesIO(data), format="mp3", codec="mp3")  # no ffprobe
    return PreparedAudio(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        duration_seconds=round(len(final) / 1000, 3),
        loudness_lufs=round(loudness(final), 2),
    )
