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
