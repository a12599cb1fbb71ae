"""A weekly segment that rotates through four programmes at three communes' loudspeakers
for six weeks, imported from a plan file; commune B's player is offline in week 2. Each
week's picks are recorded with the deliveries; B gets the programme it missed in week 3
while the others move on; the preview said beforehand what each commune would get."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from channels.base import Outcome
from channels.states import PLAYED, SENT
from coso.clock import ManualClock
from coso.config import Settings
from coso.errors import InputErrors
from dispatcher.cli.app import app
from dispatcher.models import Delivery
from dispatcher.queries import find_plan
from dispatcher.rotation_picks import turns
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.preview import preview
from tests.helpers import Accepting
from tests.loudspeakers import clip, speaker_settings
from tests.plans import write_plan

A, B, C = "06040", "06046", "06112"
PROGRAMMES = ("tap-1", "tap-2", "tap-3", "tap-4")
FIRST = datetime(2021, 5, 2, 23, 0, tzinfo=UTC)  # Monday 03/05/2021 06:00 in Hồ Chí Minh


def plan_text(audio: Path, policy: str = "in-order", extra: str = "") -> str:
    content = "".join(
        f'[[content]]\nkey = "{key}"\nkind = "audio"\ntitle = "Tập {n}: Cải cách thủ tục"\n'
        f'state = "approved"\naudio = "{audio}"\n\n'
        for n, key in enumerate(PROGRAMMES, 1)
    )
    speakers = "".join(
        f'[[endpoints]]\nchannel = "loudspeaker"\naddress = "loa-{u}"\nunit = "{u}"\n\n'
        for u in (A, B, C)
    )
    return f"""\
[plan]
number = "60/KH-UBND"
title = "Chuyên mục hằng tuần về cải cách hành chính"
period_start = 2021-05-01
period_end = 2021-07-31

{content}{speakers}[[schedules]]
name = "Chuyên mục sáng thứ hai"
rotation = {list(PROGRAMMES)!r}
policy = "{policy}"
channel = "loudspeaker"
targets = {{ units = ["{A}", "{B}", "{C}"] }}
start = 2021-05-03T06:00:00
rrule = "FREQ=WEEKLY;BYDAY=MO"
until = 2021-07-31
validity = "1h"
{extra}""".replace("'", '"')


@pytest.fixture
def speakers(settings: Settings, broker_url: str, tmp_path: Path) -> Settings:
    return speaker_settings(settings, broker_url, tmp_path)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_b_gets_the_programme_it_missed_while_the_others_move_on(
    engine: Engine, speakers: Settings, tmp_path: Path
) -> None:
    clock = ManualClock(FIRST - timedelta(days=1))
    import_plan_file(
        engine, speakers, write_plan(tmp_path, plan_text(clip(tmp_path, 1.0))), clock.now()
    )
    plan = find_plan(engine, "60/KH-UBND")
    coso = Dispatcher(
        engine, speakers, clock, channels={"loudspeaker": Accepting("loudspeaker", speakers)}
    )
    got: dict[str, list[str]] = {A: [], B: [], C: []}
    for week in range(6):
        slot = FIRST + timedelta(weeks=week)
        # What the preview says this week's slot sends, per programme: how many players.
        said = Counter(
            {
                row.content: row.endpoints
                for row in preview(
                    engine,
                    plan.id,
                    slot - timedelta(hours=1),
                    1,
                    lambda s, t, n: turns(engine, s, t, n),
                )
            }
        )
        clock.set(slot + timedelta(seconds=1))
        coso.tick()
        fresh = _deliveries(engine, slot)
        assert Counter(d.title for d in fresh) == said, week  # the log and the preview agree
        for d in fresh:
            got[d.unit_code].append(d.key)
            if not (week == 1 and d.unit_code == B):  # B's player is offline in week 2
                coso.host.receive([Outcome(d.id, PLAYED, "played", clock.now(), "player")])
        clock.set(slot + timedelta(hours=1, minutes=1))
        coso.host.expire("loudspeaker", (SENT,), clock.now(), "no player acknowledged it")
    for sender in coso.senders.values():
        sender.close()
    assert got[A] == got[C] == ["tap-1", "tap-2", "tap-3", "tap-4", "tap-1", "tap-2"]
    assert got[B] == ["tap-1", "tap-2", "tap-2", "tap-3", "tap-4", "tap-1"]
    with engine.connect() as conn:
        states = Counter(conn.scalars(select(Delivery.state)).all())
    assert states == {"played": 17, "expired": 1}


def _deliveries(engine: Engine, slot: datetime) -> list[object]:
    from content.models import ContentItem

    D, Cn = Delivery.__table__, ContentItem.__table__
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(D.c.id, D.c.unit_code, Cn.c.key, Cn.c.title)
                .join(Cn, Cn.c.id == D.c.content_id)
                .where(D.c.scheduled_for == slot)
            ).all()
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_rotation_in_a_plan_file_is_checked_kept_and_exported(
    engine: Engine, speakers: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = clip(tmp_path, 1.0)
    now = FIRST - timedelta(days=1)
    bad = plan_text(audio).replace('"tap-4"]', '"tap-5"]')
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, speakers, write_plan(tmp_path, bad, "bad.toml"), now)
    assert "schedules[0].rotation = 'tap-5': no content with this key" in str(refused.value)
    stray = plan_text(audio, "weighted", "weights = { tap-9 = 2 }\n")
    with pytest.raises(InputErrors) as refused:
        import_plan_file(engine, speakers, write_plan(tmp_path, stray, "stray.toml"), now)
    assert "weights name content not in the rotation" in str(refused.value)
    good = plan_text(audio, "weighted", "weights = { tap-1 = 3 }\n")
    import_plan_file(engine, speakers, write_plan(tmp_path, good, "good.toml"), now)
    monkeypatch.setenv("COSO_DATABASE__URL", speakers.database.url)
    exported = CliRunner().invoke(app, ["plan", "export", "60/KH-UBND"])
    assert exported.exit_code == 0, exported.output
    assert 'rotation = [\n    "tap-1",\n    "tap-2",\n    "tap-3",\n    "tap-4",\n]' in (
        exported.output
    )
    assert 'policy = "weighted"' in exported.output and "tap-1 = 3.0" in exported.output
