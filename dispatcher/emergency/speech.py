"""The audio of an emergency, for channels that play sound (loudspeakers): the file given
with --audio, prepared like uploaded audio. Text-only emergencies on those channels wait
for Vietnamese speech synthesis: `spoken` is the one place it will be called from."""

from __future__ import annotations

from pathlib import Path

from channels import registry
from content.audio import PreparedAudio, prepare_audio
from coso.config import Settings
from coso.errors import InputError
from dispatcher.emergency.request import EmergencyRequest


def audio_for(
    settings: Settings, request: EmergencyRequest, text: str, channels: list[str]
) -> tuple[PreparedAudio | None, str]:
    """(prepared audio, its source name) when a chosen channel plays sound; (None, "")
    when none does."""
    playing = [c for c in channels if registry.get(c).needs_audio]
    if request.audio is not None:
        path = Path(request.audio)
        if not path.is_file():
            raise InputError("--audio", str(path), "không có tệp âm thanh này")
        return prepare_audio(path, settings.media), path.name
    if not playing:
        return None, ""
    return spoken(settings, text, playing), "speech"


def spoken(settings: Settings, text: str, channels: list[str]) -> PreparedAudio:
    """The text read aloud in Vietnamese. Not available yet: a channel that plays sound
    needs the audio given."""
    titles = ", ".join(registry.get(c).title for c in channels)
    raise InputError(
        "--audio",
        "",
        f"kênh {', '.join(channels)} ({titles}) cần âm thanh: cho tệp bằng --audio, "
        "hoặc chọn kênh khác bằng --channels",
    )
