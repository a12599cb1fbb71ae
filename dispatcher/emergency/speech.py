"""The audio of an emergency, for channels that play sound (loudspeakers): the file given
with --audio, prepared like uploaded audio; without one, the text read aloud in Vietnamese
after a chime (content/speech.py), labelled as synthesised. A drill's speech says it is a
drill, as its SMS, boards and bulletin do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from channels import registry
from content.speech import SYNTHESISED, prepare_speech
from coso.config import Settings
from coso.errors import InputError
from dispatcher.emergency.request import EmergencyRequest
from schedules.emergencies import labelled

if TYPE_CHECKING:  # audio preparation (numpy, scipy: about 80 MB) loads when an emergency
    from content.audio import PreparedAudio  # has audio, not in every process that can declare

# Said again after a drill's words, for whoever tuned in after its label.
DRILL_CLOSING = "Đây là tin diễn tập."


@dataclass(frozen=True)
class EmergencyAudio:
    prepared: PreparedAudio
    source_name: str  # the uploaded file's name, or "giọng đọc tổng hợp (voice)"
    voice: str | None = None  # the synthesiser's voice when it is speech

    def note(self) -> str:
        """What the console and the log say the loudspeakers play."""
        seconds = f"{self.prepared.duration_seconds:.1f} giây"
        if self.voice:
            return f"loa phát {SYNTHESISED} ({self.voice}), {seconds}"
        return f"loa phát tệp {self.source_name}, {seconds}"


def audio_for(
    settings: Settings, request: EmergencyRequest, text: str, channels: list[str]
) -> EmergencyAudio | None:
    """The emergency's audio when a chosen channel plays sound (or a file was given);
    None when none does."""
    playing = [c for c in channels if registry.get(c).needs_audio]
    if request.audio is not None:
        path = Path(request.audio)
        if not path.is_file():
            raise InputError("--audio", str(path), "không có tệp âm thanh này")
        from content.audio import prepare_audio

        return EmergencyAudio(prepare_audio(path, settings.media), path.name)
    if not playing:
        return None
    return spoken(settings, words_to_speak(text, request.drill))


def words_to_speak(text: str, drill: bool) -> str:
    """The words read aloud: a drill's carry its label first, as its SMS and boards do, and
    say it again at the end."""
    if not drill:
        return text
    return f"{labelled(text, drill)}\n{DRILL_CLOSING}"


def spoken(settings: Settings, text: str) -> EmergencyAudio:
    """The text read aloud in Vietnamese, after a chime."""
    prepared, voice, _reading = prepare_speech(text, settings, chime_first=True)
    return EmergencyAudio(prepared, f"{SYNTHESISED} ({voice})", voice)
