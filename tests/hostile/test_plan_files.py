"""Plan files from the grammar of docs/plan-file.md with one field broken, or the whole file
saved badly: `coso plan import` refuses each with a line naming the field, writes nothing,
and a valid plan imported afterwards still fires and is posted."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from sqlalchemy import Engine, func, select

from channels.web.channel import BulletinPost
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.hostile.conftest import (
    Cli,
    assert_clear_refusal,
    assert_unchanged,
    restore,
    snapshot,
)
from tests.hostile.strategies import (
    BadBytes,
    BadPlan,
    bad_plan,
    bad_plans,
    broken_encodings,
    toml_document,
    valid_plan,
)
from tests.plans import write_plan

VALID = toml_document(valid_plan())


def _posted_after_import(engine: Engine, settings: Settings, tmp_path: Path) -> int:
    """Import the valid plan and run its first slot (Mon 03/05/2021 06:00 local): how many
    bulletin posts it made."""
    clock = ManualClock(datetime(2021, 5, 2, 12, 0, tzinfo=UTC))
    import_plan_file(engine, settings, write_plan(tmp_path, VALID, "valid.toml"), clock.now())
    clock.set(datetime(2021, 5, 2, 23, 0, tzinfo=UTC))
    Dispatcher(engine, settings, clock).tick()
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(BulletinPost)) or 0


def _known(field: str, value: object) -> BadPlan:
    """A defect found before: the valid plan with `field` (of [plan] or the schedule) set."""
    doc = valid_plan()
    section = "plan" if field == "number" else "schedules"
    table = doc["plan"] if field == "number" else doc["schedules"][0]
    table[field] = value
    return bad_plan(section, field, doc)


def test_the_generated_plan_is_valid(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    """The control: the grammar's valid plan imports, fires and posts to its 3 communes."""
    assert _posted_after_import(engine, settings, tmp_path) == 3


def test_a_plan_with_one_field_broken_is_refused_naming_it(
    cli: Cli, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    before = snapshot(engine)

    @given(bad_plans())
    @example(_known("rrule", "FREQ=SECONDLY;INTERVAL=0;UNTIL=20211231T000000"))
    @example(_known("rrule", "FREQ=SECONDLY;UNTIL=20211231T000000"))
    @example(_known("start", datetime(1, 1, 1)))
    @example(_known("number", "\x00"))
    @example(_known("number", "\u202e95/KH-UBND"))
    @example(_known("number", "  "))
    def refused(bad: BadPlan) -> None:
        path = write_plan(tmp_path, bad.text)
        result = cli("plan", "import", str(path))
        assert_unchanged(engine, before)
        assert_clear_refusal(result, "plan.toml", bad.field)

    refused()
    assert _posted_after_import(engine, settings, tmp_path) == 3


def _shown_plan(cli: Cli) -> list[str]:
    """`coso plan show` of the valid plan, word by word, without the table rules and row
    ids (PostgreSQL does not reuse the ids of rows taken out again)."""
    words = re.sub(r"[│┃━─┏┓┗┛┡┩└┘┌┐┬┴┼╇╋┳┻]", " ", cli("plan", "show", "95/KH-UBND").output)
    return [w for w in words.split() if not w.isdigit()]


def test_a_plan_file_saved_badly_is_refused_naming_the_file(
    cli: Cli, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Bytes no encoding reads are refused naming the file; a file whose BOM says how it
    was saved (UTF-16, UTF-8 with a BOM) is read as its UTF-8 twin and imports the same."""
    before = snapshot(engine)
    path = tmp_path / "plan.toml"
    path.write_text(VALID, encoding="utf-8")
    assert cli("plan", "import", str(path)).exit_code == 0
    twin = _shown_plan(cli)
    assert "95/KH-UBND" in twin and "CCHC" in twin, twin
    restore(engine, before)

    @given(broken_encodings(VALID))
    def refused(bad: BadBytes) -> None:
        path.write_bytes(bad.raw)
        result = cli("plan", "import", str(path))
        if bad.readable:
            shown = _shown_plan(cli)
            restore(engine, before)
            assert result.exit_code == 0, result.output
            assert shown == twin
            return
        assert_unchanged(engine, before)
        assert_clear_refusal(result, "plan.toml")

    refused()
    assert _posted_after_import(engine, settings, tmp_path) == 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("until", -1),  # a number, once read as 1969
        ("until", date(1, 1, 1)),  # before start: it would never fire
        ("exdates", [5]),  # once read as 1970
        ("validity", False),  # once read as 0 s
        ("validity", True),
        ("validity", -0.0),
        ("validity", 0),
        ("validity", 2**64),  # once an OverflowError traceback
        ("misfire_grace", 2**64),
    ],
)
def test_a_schedule_field_of_the_wrong_kind_is_refused(
    field: str, value: object, cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, _known(field, value).text)))
    assert_unchanged(engine, before)
    assert_clear_refusal(result, f"schedules[0].{field}")
