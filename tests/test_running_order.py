"""Priority items that share a slot in a commune go out in the order its operator sets on the
"Hôm nay" page (one tap moves an item up), else in the order they were queued: the station's
task list, the loudspeakers' programme and play commands, and a player's turn all follow it.
Another commune's operator, a viewer, or a slot already gone get a refusal that changes
nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from channels.loudspeaker import protocol as p
from channels.loudspeaker.player.core import Player, StateFile
from channels.loudspeaker.programme import programmes
from channels.loudspeaker.signing import command_key, sign
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.host import EngineHost
from dispatcher.models import Delivery
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from schedules.models import Schedule
from schedules.running_order import RunningOrder, SlotItem, clashes, moved_up, position
from tests.conftest import ServerThread
from tests.console import make_user, post_form, signed_in
from tests.helpers import SLOT
from tests.loudspeakers import CountingSink, clip, speaker_settings
from tests.plans import write_plan
from tests.test_station import fire

BOTH = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
TODAY_A = "/units/06040/today?day=03/05/2021"
BEFORE = datetime(2021, 5, 2, 12, 0, tzinfo=UTC)  # 19:00 the evening before the slot
TITLES = ("Lịch tiêm chủng đợt 3", "Thu thuế đất năm 2021", "Bản tin thường ngày")


def _plan(audio: Path) -> str:
    contents = "".join(
        f'[[content]]\nkey = "c{n}"\nkind = "audio"\ntitle = "{title}"\n'
        f'body = "Kính thưa bà con: {title}."\nstate = "approved"\naudio = "{audio}"\n\n'
        for n, title in enumerate(TITLES)
    )
    schedules = "".join(
        f'[[schedules]]\nname = "{channel} {n}"\ncontent = "c{n}"\nchannel = "{channel}"\n'
        f'targets = {{ units = ["06040", "06046"] }}\nstart = 2021-05-03T06:00:00\n'
        f'validity = "2h"\npriority = "{"normal" if n == 2 else "priority"}"\n\n'
        for channel in ("station", "loudspeaker")
        for n in range(3)
    )
    return f"""\
[plan]
number = "30/KH-UBND"
title = "Tin ưu tiên buổi sáng"
period_start = 2021-05-01
period_end = 2021-12-31

{contents}
[[endpoints]]
channel = "station"
address = "station:06040"
unit = "06040"

[[endpoints]]
channel = "station"
address = "station:06046"
unit = "06046"

[[endpoints]]
channel = "loudspeaker"
address = "loa-06040"
unit = "06040"

[[endpoints]]
channel = "loudspeaker"
address = "loa-06046"
unit = "06046"

{schedules}"""


@pytest.fixture
def morning(engine: Engine, settings: Settings, broker_url: str, tmp_path: Path) -> Iterator[Any]:
    settings = speaker_settings(settings, broker_url, tmp_path)
    clock = ManualClock(BEFORE)
    plan = write_plan(tmp_path, _plan(clip(tmp_path, 2.0)))
    import_plan_file(engine, settings, plan, clock.now())
    make_user(engine, "van-hanh-a", ["operator"], ["06040"])
    make_user(engine, "van-hanh-b", ["operator"], ["06046"])
    make_user(engine, "xem-a", ["viewer"], ["06040"])

    class Rig:
        pass

    rig = Rig()
    rig.clock, rig.engine, rig.settings = clock, engine, settings  # type: ignore[attr-defined]
    rig.host = EngineHost(engine, settings, clock)  # type: ignore[attr-defined]
    with ServerThread(create_app(engine, settings, clock)) as server:
        rig.url = server.url  # type: ignore[attr-defined]
        yield rig


def _schedules(engine: Engine) -> dict[tuple[str, str], int]:
    """(channel, title) → schedule id."""
    with engine.connect() as conn:
        rows = conn.execute(select(Schedule.channel, Schedule.id, Schedule.name)).all()
    return {(r.channel, TITLES[int(r.name.split()[-1])]): r.id for r in rows}


def _clash_order(page: str, channel: str) -> list[str]:
    """The titles of the page's clash on `channel` (in 06040), top to bottom."""
    section = rf'<section class="task clash" data-unit="06040"[^>]*data-channel="{channel}">'
    found = re.search(section + "(.*?)</section>", page, re.S)
    assert found, f"no clash on {channel} in the page"
    return re.findall(r'<span class="title">([^<]+)</span>', found.group(1))


def _task_order(page: str) -> list[str]:
    tasks = page.split("<h2>Việc của người trực</h2>", 1)[1].split("<h2>", 1)[0]
    return re.findall(r"<h3>([^<]+)</h3>", tasks)


def _move_up(client: Any, rig: Any, channel: str, title: str, page: str = TODAY_A) -> Any:
    """Tap "Lên trước" on `title`'s item in 06040's slot (the form's token from `page`)."""
    return post_form(
        client,
        page,
        "/units/06040/order",
        {
            "unit": "06040",
            "slot": SLOT.isoformat(),
            "schedule_id": str(_schedules(rig.engine)[(channel, title)]),
        },
    )


@BOTH
def test_operator_moves_a_priority_item_up_and_everything_follows(morning: Any) -> None:
    first, second, normal = TITLES
    with signed_in(morning.url, "van-hanh-a") as operator:
        page = operator.get(TODAY_A).text
        # Queued first goes first until the operator says otherwise; the normal item never
        # clashes (it goes after the priority ones).
        assert _clash_order(page, "station") == [first, second]
        assert _clash_order(page, "loudspeaker") == [first, second]
        assert _task_order(page) == [first, second, normal]

        moved = _move_up(operator, morning, "station", second)
        assert moved.status_code == 303, moved.text
        page = operator.get(moved.headers["location"]).text
        assert "Đã đổi thứ tự phát" in page
        assert _clash_order(page, "station") == [second, first]
        assert _task_order(page) == [second, first, normal]  # the station's list of the day
        assert _clash_order(page, "loudspeaker") == [first, second]  # another system

        assert _move_up(operator, morning, "loudspeaker", second).status_code == 303
        page = operator.get(TODAY_A).text
        assert _clash_order(page, "loudspeaker") == [second, first]
        assert _clash_order(page, "station") == [second, first]
        answer = operator.get("/units/06040/today.json?day=03/05/2021").json()
        assert [[s["title"] for s in c["schedules"]] for c in answer["clashes"]] == [
            [second, first],
            [second, first],
        ]

    ids = _schedules(morning.engine)
    with morning.engine.connect() as conn:
        kept = conn.execute(select(RunningOrder.unit_code, RunningOrder.set_by)).all()
    assert [(k.unit_code, k.set_by) for k in kept] == [("06040", "van-hanh-a")]

    # The loudspeakers' programme: in 06040 the second item goes first; 06046 keeps the queue.
    programme = programmes(morning.host, morning.clock.now(), timedelta(hours=48))
    for player, expected in (("loa-06040", [second, first]), ("loa-06046", [first, second])):
        ranked = sorted(
            (e for e in programme[player] if e["priority"] == "priority"),
            key=lambda e: e["order"],
        )
        assert [e["title"] for e in ranked] == expected, player

    # The slot fires: the play commands carry the same order.
    fire(morning, SLOT + timedelta(seconds=1))
    with morning.engine.connect() as conn:
        rows = conn.execute(
            select(Delivery).where(Delivery.channel == "loudspeaker", Delivery.priority == 1)
        ).all()
    messages = morning.host.messages(rows)
    order = {(m.unit_code, m.extra["schedule_id"]): m.extra["order"] for m in messages}
    loud_first, loud_second = ids[("loudspeaker", first)], ids[("loudspeaker", second)]
    assert order[("06040", loud_second)] < order[("06040", loud_first)]
    assert order[("06046", loud_first)] < order[("06046", loud_second)]


@BOTH
def test_another_commune_a_viewer_or_a_slot_gone_changes_nothing(morning: Any) -> None:
    first, second, _ = TITLES
    with signed_in(morning.url, "van-hanh-b") as other:
        theirs = "/units/06046/today?day=03/05/2021"
        assert _move_up(other, morning, "station", second, theirs).status_code == 403
        # Not through its own commune's address either.
        ids = _schedules(morning.engine)
        sneaked = post_form(
            other,
            theirs,
            "/units/06046/order",
            {"unit": "06040", "slot": SLOT.isoformat(), "schedule_id": ids[("station", second)]},
        )
        assert sneaked.status_code == 403
    with signed_in(morning.url, "xem-a") as viewer:
        page = viewer.get(TODAY_A).text
        assert _clash_order(page, "station") == [first, second]  # a viewer reads it
        assert "/units/06040/order" not in page  # and has no button
        assert _move_up(viewer, morning, "station", second).status_code == 403
    with signed_in(morning.url, "van-hanh-a") as operator:
        bad = post_form(
            operator,
            TODAY_A,
            "/units/06040/order",
            {"unit": "06040", "slot": "hôm qua", "schedule_id": "1"},
        )
        assert bad.status_code == 400 and "slot" in bad.text and "hôm qua" in bad.text
        word = post_form(
            operator,
            TODAY_A,
            "/units/06040/order",
            {"unit": "06040", "slot": SLOT.isoformat(), "schedule_id": "một"},
        )
        assert word.status_code == 400 and "schedule_id = 'một'" in word.text
        first_already = _move_up(operator, morning, "station", first)
        assert first_already.status_code == 303
        assert "xếp đầu tiên" in operator.get(first_already.headers["location"]).text
        morning.clock.set(SLOT + timedelta(minutes=1))  # gone out: too late to reorder
        late = _move_up(operator, morning, "station", second)
        assert late.status_code == 400 and "slot" in late.text
    with morning.engine.connect() as conn:
        assert conn.execute(select(RunningOrder.id)).all() == []


def test_a_player_plays_priority_items_of_one_slot_in_the_order_given(tmp_path: Path) -> None:
    """Two priority items and a normal one due at once: priority first, then by `order`
    (lower first), whatever order the commands came in."""
    key = command_key(b"order-test-secret-0123456789abcd", "loa-1", 0)
    sink = CountingSink()
    player = Player(
        "loa-1", sink, tmp_path, StateFile(None), lambda *_: True, lambda *_: None,
        key=key, media_origin="http://127.0.0.1:9",
    )  # fmt: skip
    at = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)
    media = {}
    for n, (priority, order) in enumerate([("normal", 0), ("priority", 9), ("priority", 4)]):
        sha = hashlib.sha256(str(n).encode()).hexdigest()
        media[sha] = f"item {n}"
        player.media_ready(sha, None, at)
        command = p.play_command(
            delivery_id=100 + n,
            media={"url": f"http://127.0.0.1:9/media/{sha}", "sha256": sha, "duration": 0},
            not_before=at,
            expires_at=at + timedelta(hours=1),
            priority=priority,
            volume=80,
            title=f"item {n}",
            slot=None,
            sent_at=at,
            order=order,
        )
        assert player.handle(sign(command, "loa-1", key, 0, at), at)
    for second in range(1, 5):  # each clip lasts no time: one ends and the next starts
        player.tick(at + timedelta(seconds=second))
    played = [media[name.removesuffix(".mp3")] for name, _ in sink.played]
    assert played == ["item 2", "item 1", "item 0"]


def test_clashes_are_priority_items_sharing_a_communes_slot_on_one_channel() -> None:
    at = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)
    items = [
        SlotItem("06040", at, 7, "priority", "a", "station"),
        SlotItem("06040", at, 3, "priority", "b", "station"),
        SlotItem("06040", at, 5, "normal", "c", "station"),
        SlotItem("06040", at, 4, "priority", "d", "loudspeaker"),  # alone on its channel
        SlotItem("06046", at, 7, "priority", "a", "station"),  # alone in its commune
        SlotItem("06040", at + timedelta(hours=1), 8, "priority", "e", "station"),
    ]
    found = clashes(items, {("06040", at.isoformat(timespec="seconds")): [7]})
    assert [(c.unit_code, c.channel, c.schedule_ids) for c in found] == [
        ("06040", "station", [7, 3])
    ]
    assert clashes(items, {})[0].schedule_ids == [3, 7]  # queue order
    assert moved_up([9, 7, 3], [7, 3], 3) == [3, 7, 9]
    assert moved_up([], [3, 7], 3) == [3, 7]  # already first
    assert position(5, [9, 5]) == 1 and position(4, [9, 5]) == 6
