"""Loudspeakers over a real MQTT broker, with reference players as in-process clients."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from channels.loudspeaker import protocol as p
from channels.loudspeaker.devices import list_players
from channels.loudspeaker.mqtt import LocalBroker, parse_broker_url
from channels.registry import settings_of
from coso.clock import SystemClock
from coso.config import Settings
from dispatcher.messages import build_messages
from dispatcher.models import ActivityEntry, Delivery
from tests.helpers import wait_for
from tests.loudspeakers import (
    clip,
    count,
    import_broadcast,
    log_count,
    players,
    plays,
    running_coso,
    slot_in,
    speaker_settings,
    states,
)


def test_scheduled_broadcast_to_50_players_plays_once_on_each(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = [f"loa-{n:03d}" for n in range(50)]
    slot = slot_in(3)
    import_broadcast(engine, settings, tmp_path, ids, slot, clip(tmp_path, 1.0))
    group = players(settings, ids, tmp_path, per_connection=20).start()
    try:
        with running_coso(engine, settings):
            wait_for(lambda: log_count(engine, "played") >= 50, 40, "50 played entries")
    finally:
        group.stop()
    assert [plays(group, pid) for pid in ids] == [1] * 50
    assert log_count(engine, "played") == 50
    assert log_count(engine, "played", distinct=True) == 50
    assert set(states(engine).values()) == {"played"}
    with engine.connect() as conn:
        played_at = conn.scalars(select(ActivityEntry.at).where(ActivityEntry.event == "played"))
        # At the slot, not before it; how soon after it is a figure for a benchmark (on a
        # busy machine the players may get their programme after the slot: still in time).
        assert all(-1 < (at - slot).total_seconds() < 600 for at in played_at)


def test_events_process_killed_is_started_again_and_misses_nothing(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Player events are applied in a process of their own. Killed, it is started again,
    and what players reported meanwhile (kept by the broker for its session) is applied."""
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = ["loa-a", "loa-b"]
    # The slot is far enough away that the kill comes before the players play, even on a
    # busy machine; the test checks that it did.
    slot = slot_in(15)
    import_broadcast(engine, settings, tmp_path, ids, slot, clip(tmp_path, 0.6))
    group = players(settings, ids, tmp_path).start()
    try:
        with running_coso(engine, settings) as dispatcher:
            assert "loudspeaker" in dispatcher.services
            service = dispatcher.services["loudspeaker"]
            first = service.events_process
            assert first is not None and first.alive and first.pid != os.getpid()
            os.kill(first.pid or 0, signal.SIGKILL)
            killed_at = SystemClock().now()
            assert killed_at < slot, "the machine was too slow to kill before the slot"

            def restarted() -> bool:
                again = service.events_process
                return again is not None and again is not first and again.alive

            wait_for(restarted, 40, "the events process started again")
            wait_for(lambda: log_count(engine, "played") >= 2, 60, "both played")
    finally:
        group.stop()
    assert log_count(engine, "played") == 2
    assert [plays(group, pid) for pid in ids] == [1, 1]


def test_redelivered_command_plays_once(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = ["loa-a", "loa-b"]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(2), clip(tmp_path, 0.6))
    group = players(settings, ids, tmp_path).start()
    try:
        with running_coso(engine, settings) as dispatcher:
            wait_for(lambda: log_count(engine, "played") >= 2, 30, "both played")
            with engine.connect() as conn:
                rows = conn.execute(select(Delivery)).all()
            again = [m for m in build_messages(engine, rows) if not isinstance(m, tuple)]
            channel = dispatcher.channels["loudspeaker"]
            for _ in range(3):
                assert channel.republish(again) == 2  # type: ignore[attr-defined]
            wait_for(
                lambda: all(
                    group.player(pid).state.seq >= 6 for pid in ids
                ),  # each answered the repeats
                10,
                "the players to answer the repeated commands",
            )
    finally:
        group.stop()
    assert [plays(group, pid) for pid in ids] == [1, 1]
    assert log_count(engine, "played") == 2


def test_forged_event_about_another_players_delivery_is_rejected_and_logged(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    # player A exists (a later broadcast); B has a delivery now
    import_broadcast(engine, settings, tmp_path, ["loa-a"], slot_in(600), clip(tmp_path, 0.6))
    import_broadcast(
        engine, settings, tmp_path, ["loa-b"], slot_in(1), clip(tmp_path, 0.6), number="96/KH"
    )
    topics = p.Topics(settings_of(settings, "loudspeaker").topic_prefix)
    with running_coso(engine, settings):
        wait_for(lambda: bool(states(engine)), 20, "B's delivery")
        with engine.connect() as conn:
            delivery_b = conn.scalar(select(Delivery.id))
        forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger-loa-a")
        address = parse_broker_url(broker_url)
        forger.connect(address.host, address.port)
        forger.loop_start()
        now = p.parse_time("2030-01-01T00:00:00Z", "t")
        for payload in (
            p.event("finished", at=now, delivery_id=delivery_b, started_at=now),
            p.event("finished", at=now, delivery_id=987654, started_at=now),
        ):
            forger.publish(topics.events("loa-a"), p.encode(payload), qos=1).wait_for_publish(5)
        forger.loop_stop()
        forger.disconnect()
        wait_for(lambda: log_count(engine, "rejected") >= 1, 10, "the rejection in the log")
        wait_for(
            lambda: any(
                r.address == "loa-a" and r.last_failure and "987654" in r.last_failure
                for r in list_players(engine)
            ),
            10,
            "the unknown delivery on the device's record",
        )
    with engine.connect() as conn:
        entry = conn.execute(select(ActivityEntry).where(ActivityEntry.event == "rejected")).one()
        state_b = conn.scalar(select(Delivery.state).where(Delivery.id == delivery_b))
    assert entry.delivery_id == delivery_b
    assert entry.actor == "player:loa-a"
    assert "addressed to player loa-b" in entry.detail
    assert state_b != "played"


def test_offline_player_plays_late_within_validity_and_not_after_expiry(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    slot = slot_in(1)
    import_broadcast(
        engine,
        settings,
        tmp_path,
        ["loa-late", "loa-gone"],
        slot,
        clip(tmp_path, 0.6),
        validity="30s",  # room for a busy machine: the late player comes back 5 s after
    )
    with running_coso(engine, settings):
        wait_for(lambda: set(states(engine).values()) == {"sent"}, 20, "both commands sent")
        late = players(settings, ["loa-late"], tmp_path, keep_state=True)
        time.sleep(max(0.0, slot.timestamp() + 5 - time.time()))
        late.start()  # back within validity
        try:
            wait_for(lambda: log_count(engine, "played") == 1, 25, "the late player to play")
            wait_for(lambda: log_count(engine, "expired") == 1, 45, "the other to expire")
            gone = players(settings, ["loa-gone"], tmp_path, keep_state=True).start()
            try:
                wait_for(lambda: gone.player("loa-gone").online, 10, "the second player back")
                time.sleep(3)  # time enough to (wrongly) play
            finally:
                gone.stop()
        finally:
            late.stop()
    assert plays(late, "loa-late") == 1
    assert plays(gone, "loa-gone") == 0
    with engine.connect() as conn:
        played = conn.execute(select(ActivityEntry).where(ActivityEntry.event == "played")).one()
        rows = dict(conn.execute(select(Delivery.id, Delivery.state)).all())
    assert "late by" in played.detail
    assert sorted(rows.values()) == ["expired", "played"]


def test_player_that_loses_its_link_after_sync_plays_on_time_and_uploads_as_run(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    # Not cued: the command goes at the slot, after the link is down (cued, it could arrive
    # before, and the player would play the command, not its programme).
    settings = speaker_settings(settings, broker_url, tmp_path, cue_ahead="0s")
    # Lead enough for the import, coso's start and the sync on a busy machine: the link
    # must go down before the slot, or the command arrives and the test proves nothing.
    slot = slot_in(15)
    import_broadcast(engine, settings, tmp_path, ["loa-3g"], slot, clip(tmp_path, 0.6))
    group = players(settings, ["loa-3g"], tmp_path, keep_state=True).start()
    player = group.player("loa-3g")
    try:
        with running_coso(engine, settings):
            key = p.slot_key(_schedule_id(engine), slot)
            wait_for(lambda: key in player.state.entries, 30, "the programme to arrive")
            wait_for(lambda: player.state.entries[key].media["sha256"] in player.ready, 30, "media")
            group.links[0].drop()  # the 3G link goes down before the slot
            assert SystemClock().now() < slot, "the setup outlasted the lead: raise slot_in"
            wait_for(lambda: player.state.entries[key].state == "finished", 15, "offline play")
            wait_for(
                lambda: states(engine) and set(states(engine).values()) == {"sent"}, 30, "sent"
            )
            group.links[0].restore()
            wait_for(lambda: log_count(engine, "played") == 1, 20, "the as-run upload")
    finally:
        group.stop()
    assert plays(group, "loa-3g") == 1
    started = p.parse_time(player.state.entries[key].started_at, "started_at")
    assert started is not None and abs((started - slot).total_seconds()) < 1
    with engine.connect() as conn:
        played = conn.execute(select(ActivityEntry).where(ActivityEntry.event == "played")).one()
    assert played.at == started  # the true play time, not the upload time
    assert "late" not in played.detail


def _schedule_id(engine: Engine) -> int:
    from schedules.models import Schedule

    with engine.connect() as conn:
        return conn.scalar(select(Schedule.id))  # type: ignore[return-value]


def test_emergency_interrupts_the_playing_item_on_every_player(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = [f"loa-{n}" for n in range(5)]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(2), clip(tmp_path, 20, 330))
    group = players(settings, ids, tmp_path).start()
    try:
        with running_coso(engine, settings):
            wait_for(
                lambda: all(group.player(i).current is not None for i in ids),
                20,
                "normal items playing",
            )
            storm = slot_in(1)
            import_broadcast(
                engine,
                settings,
                tmp_path,
                ids,
                storm,
                clip(tmp_path, 1.0, 880),
                priority="emergency",
                number="KHẨN/BÃO",
                name="Cảnh báo bão",
            )
            wait_for(
                lambda: log_count(engine, "played") == 5, 20, "the emergency played everywhere"
            )
    finally:
        group.stop()
    for pid in ids:
        starts = group.player(pid).sink.played  # type: ignore[attr-defined]
        assert len(starts) == 2
        # The 20-second item was cut: the emergency did not wait for its end. (How soon it
        # starts is a figure for a benchmark, not a test on a machine that may be busy.)
        assert storm.timestamp() - 0.5 <= starts[1][1] < starts[0][1] + 20, f"{pid} not cut"
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.priority, Delivery.state, Delivery.last_error)).all()
    normal = [r for r in rows if r.priority == 0]
    assert {r.state for r in normal} == {"failed"}
    assert all("interrupted" in r.last_error for r in normal)
    assert {r.state for r in rows if r.priority == 2} == {"played"}


def test_broker_restart_in_the_middle_of_a_1000_player_fan_out_doubles_nothing(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    broker = LocalBroker().start()  # our own, to restart on the same port
    settings = speaker_settings(
        settings, broker.url, tmp_path, max_inflight=20, publish_timeout=2.0
    )
    settings.dispatcher.claim_batch = 50
    ids = [f"loa-{n:04d}" for n in range(1000)]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(3), clip(tmp_path, 0.6))
    group = players(settings, ids, tmp_path, per_connection=250).start()
    try:
        with running_coso(engine, settings):
            sent = select(func.count()).select_from(Delivery).where(Delivery.state != "pending")
            wait_for(lambda: count(engine, sent) >= 50, 30, "the fan-out to be under way")
            broker.kill()
            at_kill = log_count(engine, "played")
            time.sleep(1)
            broker = LocalBroker(port=broker.port, prefer=broker.kind).start()
            wait_for(lambda: log_count(engine, "played") >= 1000, 120, "1,000 played")
            time.sleep(1)  # let anything that would double show itself
    finally:
        group.stop()
        broker.stop()
    assert at_kill < 1000, "the broker went down after the fan-out"
    assert [plays(group, pid) for pid in ids] == [1] * 1000
    assert log_count(engine, "played") == 1000
    assert log_count(engine, "played", distinct=True) == 1000
    assert set(states(engine).values()) == {"played"}


def test_operator_stops_players_and_sets_their_volume_from_the_command_line(
    engine: Engine,
    settings: Settings,
    broker_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from dispatcher.cli.app import app

    settings = speaker_settings(settings, broker_url, tmp_path)
    loudspeaker = settings_of(settings, "loudspeaker")
    monkeypatch.setenv("COSO_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("COSO_CHANNELS__LOUDSPEAKER__TOPIC_PREFIX", loudspeaker.topic_prefix)
    monkeypatch.setenv("COSO_MEDIA__DIR", settings.media.dir)  # its secret signs the commands
    runner = CliRunner()
    ids = ["loa-a", "loa-b", "loa-c"]
    import_broadcast(engine, settings, tmp_path, ids, slot_in(2), clip(tmp_path, 20, 330))
    group = players(settings, ids, tmp_path).start()
    try:
        with running_coso(engine, settings):
            wait_for(lambda: all(group.player(i).current is not None for i in ids), 20, "playing")
            stopped = runner.invoke(
                app, ["players", "stop", "loa-a", "loa-b", "--broker", broker_url]
            )
            assert stopped.exit_code == 0, stopped.output
            assert "stop: sent to 2 of 2 player(s)" in stopped.output
            wait_for(lambda: log_count(engine, "failed") == 2, 10, "two stops logged")
            assert group.player("loa-c").current is not None  # not named: plays on
            volume = runner.invoke(
                app, ["players", "volume", "35", "--unit", "06040", "--broker", broker_url]
            )
            assert volume.exit_code == 0, volume.output
            wait_for(lambda: all(group.player(i).state.volume == 35 for i in ids), 10, "volume")
            import_broadcast(
                engine,
                settings,
                tmp_path,
                ids,
                slot_in(1),
                clip(tmp_path, 0.5, 880),
                number="96/KH",
            )
            wait_for(lambda: log_count(engine, "played") == 3, 20, "the next broadcast played")
            unknown = runner.invoke(app, ["players", "stop", "loa-x", "--broker", broker_url])
            assert unknown.exit_code == 2
            assert "loa-x" in unknown.output and "no loudspeaker endpoint" in unknown.output
            bad = runner.invoke(app, ["players", "volume", "140", "loa-a", "--broker", broker_url])
            assert bad.exit_code == 2 and "between 0 and 100" in bad.output
            both = runner.invoke(
                app, ["players", "stop", "loa-a", "--unit", "06040", "--broker", broker_url]
            )
            assert both.exit_code == 2 and "not both" in both.output
    finally:
        group.stop()
    with engine.connect() as conn:
        errors = conn.scalars(select(Delivery.last_error).where(Delivery.state == "failed")).all()
    assert errors and all("stopped by the operator" in e for e in errors)
    for pid in ids:  # the broadcast after the volume change played at the operator's level
        assert group.player(pid).sink.volumes[-1] == 35  # type: ignore[attr-defined]


def test_a_few_players_keep_their_events_in_the_dispatchers_process(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """ "auto": a second process (and its memory) only pays from 500 players on."""
    from dispatcher.service import Dispatcher

    few = speaker_settings(settings, broker_url, tmp_path, events_process="auto")
    import_broadcast(engine, few, tmp_path, ["loa-a", "loa-b"], slot_in(60), clip(tmp_path, 0.6))
    dispatcher = Dispatcher(engine, few, SystemClock())
    try:
        assert dispatcher.channels["loudspeaker"].role == "all"
    finally:
        dispatcher.stop()
    forced = speaker_settings(settings, broker_url, tmp_path, events_process=True)
    dispatcher = Dispatcher(engine, forced, SystemClock())
    try:
        assert dispatcher.channels["loudspeaker"].role == "commands"
    finally:
        dispatcher.stop()


def test_auto_gives_player_events_a_process_of_their_own_only_with_the_cpus_for_it(
    settings: Settings,
) -> None:
    """On two CPUs the events process gains no time over a thread (the players' traffic
    takes the second CPU) and costs 66 MB: "auto" keeps the events in the dispatcher's
    process there, and gives them a process from four CPUs on."""
    from channels.loudspeaker.events_process import wanted
    from channels.loudspeaker.settings import LoudspeakerSettings

    auto = LoudspeakerSettings(events_process="auto")
    assert not wanted(settings, auto, 10_000, cpus=2)
    assert wanted(settings, auto, 10_000, cpus=4)
    assert not wanted(settings, auto, 100, cpus=8)
    assert wanted(settings, LoudspeakerSettings(events_process=True), 100, cpus=2)
    assert not wanted(settings, LoudspeakerSettings(events_process=False), 10_000, cpus=8)


def test_play_commands_reach_the_players_ahead_of_the_slot_and_play_at_it(
    engine: Engine, settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Loudspeakers are cued (`cue_ahead`, 10 s by default): the timer fires the schedule
    before its slot, every player has its command (`received` in the log) before the slot,
    and each starts it at the slot by its own clock, not before."""
    settings = speaker_settings(settings, broker_url, tmp_path)
    ids = [f"loa-{n:03d}" for n in range(20)]
    group = players(settings, ids, tmp_path, per_connection=10).start()
    try:
        with running_coso(engine, settings):
            slot = slot_in(14)
            import_broadcast(engine, settings, tmp_path, ids, slot, clip(tmp_path, 0.5))
            wait_for(
                lambda: log_count(engine, "received") >= 20, 30, "every player has its command"
            )
            assert SystemClock().now() < slot  # all of them, ahead of the slot
            assert [plays(group, pid) for pid in ids] == [0] * 20
            wait_for(lambda: log_count(engine, "played") >= 20, 40, "20 played entries")
    finally:
        group.stop()
    assert [plays(group, pid) for pid in ids] == [1] * 20
    for pid in ids:
        ((_, started),) = group.player(pid).sink.played  # type: ignore[attr-defined]
        assert started >= slot.timestamp() - 0.05, (pid, started - slot.timestamp())
    with engine.connect() as conn:
        received = conn.scalars(
            select(ActivityEntry.at).where(ActivityEntry.event == "received")
        ).all()
    assert all(at < slot for at in received)
