"""Where a player's audio goes: ffplay or aplay when installed, or a null sink that only
keeps time (for simulations and machines without sound)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    def start(self, path: Path, duration: float, volume: int) -> None: ...
    def done(self) -> bool: ...
    def stop(self) -> None: ...


def remaining(sink: Sink) -> float | None:
    """Seconds until the sink ends, when it knows (the null sink); None: ask `done()`."""
    known = getattr(sink, "remaining", None)
    return known() if known is not None else None


class NullSink:
    """Plays nothing, for exactly the clip's duration."""

    def __init__(self) -> None:
        self._end = 0.0

    def start(self, path: Path, duration: float, volume: int) -> None:
        self._end = time.monotonic() + duration

    def done(self) -> bool:
        return time.monotonic() >= self._end

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def stop(self) -> None:
        self._end = 0.0


class ProcessSink:
    """Plays through an external program, one clip at a time."""

    def __init__(self, command: list[str]) -> None:
        self._command = command
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, path: Path, duration: float, volume: int) -> None:
        values = {"{path}": str(path), "{volume}": str(volume), "{gain}": f"{volume / 100:.2f}"}
        args = []
        for arg in self._command:
            for key, value in values.items():
                arg = arg.replace(key, value)
            args.append(arg)
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def done(self) -> bool:
        return self._process is None or self._process.poll() is not None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._process = None


def make_sink(kind: str) -> Sink:
    """`auto` (ffplay, else aplay, else null), `ffplay`, `aplay` or `null`."""
    ffplay, aplay = shutil.which("ffplay"), shutil.which("aplay")
    if kind == "null":
        return NullSink()
    if kind in ("auto", "ffplay") and ffplay:
        return ProcessSink(
            [ffplay, "-nodisp", "-autoexit", "-loglevel", "error", "-volume", "{volume}", "{path}"]
        )
    if kind in ("auto", "aplay") and aplay:
        from content.audio import ffmpeg_binary

        pipe = (
            f"'{ffmpeg_binary()}' -loglevel error -i '{{path}}' -filter:a volume={{gain}} "
            f"-f wav - | '{aplay}' -q"
        )
        return ProcessSink(["sh", "-c", pipe])
    if kind == "auto":
        return NullSink()
    raise ValueError(f"sink {kind!r}: {kind} is not installed (or use --sink null)")
