"""A player that kept many events while offline uploads them all, in messages coso takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from channels.loudspeaker import protocol as p
from channels.loudspeaker.player.core import Player, StateFile
from channels.loudspeaker.player.sinks import NullSink
from channels.loudspeaker.settings import LoudspeakerSettings


def test_a_long_offline_outbox_is_uploaded_in_messages_within_cosos_payload_limit(
    tmp_path: Path,
) -> None:
    player = Player(
        "loa-xa", NullSink(), tmp_path, StateFile(None), lambda *_: True, lambda *_: None
    )
    start = datetime(2026, 12, 1, 6, tzinfo=UTC)
    player.state.outbox = [
        p.event(
            p.FINISHED,
            at=start + timedelta(minutes=i),
            delivery_id=100_000 + i,
            started_at=start + timedelta(minutes=i),
            reason="đã phát xong bản tin buổi sáng " * 3,
            seq=i,
        )
        for i in range(2_000)
    ]

    uploads = player.as_run_upload(start + timedelta(days=2))

    limit = LoudspeakerSettings().max_payload
    read: list[int | None] = []
    for upload in uploads:
        raw = p.encode(upload)
        assert len(raw) <= limit
        events, errors = p.read_events(p.decode(raw, limit))
        assert errors == []
        read += [e.delivery_id for e in events]
    assert read == [100_000 + i for i in range(2_000)]
    assert player.state.outbox == []


def test_a_programme_sync_after_a_command_sent_ahead_keeps_the_commands_clip(
    tmp_path: Path,
) -> None:
    """A play command comes ahead of its slot (the cue); a programme sync that follows,
    naming the same slot with another clip (a rotation's next turn, as the programme reads
    it), does not replace what coso sent this player for that slot."""
    origin = "http://coso.test"
    player = Player(
        "loa-xa", NullSink(), tmp_path, StateFile(None), lambda *_: True, lambda *_: None,
        media_origin=origin,
    )  # fmt: skip
    now = datetime(2026, 12, 1, 5, 59, 50, tzinfo=UTC)
    slot = now + timedelta(seconds=10)
    key = p.slot_key(7, slot)

    def media(sha: str) -> dict[str, object]:
        return {"url": f"{origin}/media/{sha}.mp3", "sha256": sha, "duration": 30.0}

    command = p.play_command(
        delivery_id=41, media=media("a" * 64), not_before=slot, expires_at=None,
        priority="normal", volume=80, title="Bản tin", slot=key, sent_at=now,
    )  # fmt: skip
    player._handle(command, now)
    later = {"slot": key, "media": media("b" * 64), "not_before": p.stamp(slot)}
    player._handle({"type": p.SYNC, "entries": [later]}, now + timedelta(seconds=2))
    entry = player.state.entries[key]
    assert entry.delivery_id == 41
    assert entry.media["sha256"] == "a" * 64
