"""Bad plan files exit non-zero, name the field and value, and change nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel
from typer.testing import CliRunner

import dispatcher.tables  # noqa: F401
from dispatcher.cli.app import app
from tests.plans import SMS_REMINDER_PLAN, WEEKLY_PLAN, write_plan

runner = CliRunner()


def snapshot(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.scalar(select(func.count()).select_from(table))
            for name, table in SQLModel.metadata.tables.items()
        }


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.setenv("COSO_CHANNELS__SMS__ACCOUNT_SID", "AC" + "0" * 32)  # SMS is set up
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return invoke


CASES = {
    "malformed TOML": (
        WEEKLY_PLAN.replace('title = "Tuyên', "title = Tuyên"),
        r"plan\.toml:3: toml = .*malformed TOML",
    ),
    "unknown zone": (
        WEEKLY_PLAN.replace('zone = "Asia/Ho_Chi_Minh"', 'zone = "Asia/Hanoi"'),
        r"plan\.toml:8: plan\.zone = 'Asia/Hanoi': unknown time zone",
    ),
    "invalid RRULE": (
        WEEKLY_PLAN.replace("FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=FORTNIGHTLY;BYDAY=MO"),
        r"plan\.toml:47: schedules\[0\]\.rrule = 'FREQ=FORTNIGHTLY;BYDAY=MO': not a valid",
    ),
    "unapproved content": (
        WEEKLY_PLAN.replace('state = "approved"', 'state = "draft"'),
        r"plan\.toml:43: schedules\[0\]\.content = 'cchc': content is 'draft'; only approved",
    ),
    "unknown administrative unit": (
        WEEKLY_PLAN.replace('targets = { units = ["20"] }', 'targets = { units = ["99"] }'),
        r"plan\.toml:45: schedules\[0\]\.targets\.units = '99': is not a known administrative",
    ),
    "unknown field": (
        WEEKLY_PLAN.replace('priority = "normal"', "").replace(
            'validity = "12h"', 'validity = "12h"\npriorty = "high"'
        ),
        r"plan\.toml:49: schedules\[0\]\.priorty = 'high': Extra inputs are not permitted",
    ),
    "schedule ending after the plan's period": (
        WEEKLY_PLAN.replace("until = 2021-12-31", "until = 2022-06-30"),
        r"plan\.toml:50: schedules\[0\]\.until = '2022-06-30': runs past the plan's "
        r"period_end 2021-12-31: end it by then, or clip it there with past_period = \"clip\" "
        r"under \[plan\]",
    ),
    "RRULE without an end": (
        WEEKLY_PLAN.replace("until = 2021-12-31\n", ""),
        r"plan\.toml:47: schedules\[0\]\.rrule = 'FREQ=WEEKLY;BYDAY=MO,TH': has no UNTIL or "
        r"COUNT and no until, so it runs past the plan's period_end 2021-12-31: give until",
    ),
    "RRULE counting past the plan's period": (
        WEEKLY_PLAN.replace("until = 2021-12-31\n", "").replace("BYDAY=MO,TH", "COUNT=40"),
        r"plan\.toml:47: schedules\[0\]\.rrule = 'FREQ=WEEKLY;COUNT=40': fires on "
        r"03/01/2022 06:00, after the plan's period_end 2021-12-31",
    ),
    "one-off after the plan's period": (
        WEEKLY_PLAN.replace('rrule = "FREQ=WEEKLY;BYDAY=MO,TH"\n', "").replace(
            "start = 2021-05-03T06:00:00", "start = 2022-01-03T06:00:00"
        ),
        r"plan\.toml:46: schedules\[0\]\.start = '2022-01-03T06:00:00': is after the plan's "
        r"period_end 2021-12-31",
    ),
    "start before the plan's period, even when clipping": (
        WEEKLY_PLAN.replace("start = 2021-05-03T06:00:00", "start = 2021-04-19T06:00:00").replace(
            'zone = "Asia/Ho_Chi_Minh"', 'zone = "Asia/Ho_Chi_Minh"\npast_period = "clip"'
        ),
        r"plan\.toml:47: schedules\[0\]\.start = '2021-04-19T06:00:00': is before the plan's "
        r"period_start 2021-04-21",
    ),
    "schedule reaching no endpoint": (
        WEEKLY_PLAN.replace('targets = { units = ["20"] }', 'targets = { units = ["06001"] }'),
        r"plan\.toml:45: schedules\[0\]\.targets = \{'endpoints': \[\], 'groups': \[\], "
        r"'units': \['06001'\]\}: reaches no enabled web endpoint",
    ),
    "schedule reaching no endpoint through an empty group": (
        WEEKLY_PLAN.replace(
            'targets = { units = ["20"] }', 'targets = { groups = ["trong"] }'
        ).replace(
            "[[schedules]]",
            '[[groups]]\nname = "trong"\nchannel = "web"\nunits = ["06001"]\n\n[[schedules]]',
        ),
        r"plan\.toml:50: schedules\[0\]\.targets = \{'endpoints': \[\], 'groups': \['trong'\], "
        r"'units': \[\]\}: reaches no enabled web endpoint",
    ),
    "template naming a field the recipient does not have": (
        SMS_REMINDER_PLAN.replace("recipient.name", "recipient.ho_ten"),
        r"plan\.toml:11: content\[0\]\.body = 'Kính gửi \{\{ recipient\.ho_ten \}\}: .*': "
        r"undefined name 'recipient\.ho_ten' \(for endpoint \+84912345678\)",
    ),
    "template failing for one endpoint only": (
        WEEKLY_PLAN.replace(
            "Bản tin lúc {{ local_time }}.",
            '{% if unit.code == "06112" %}Kính gửi {{ endpoint.ten }}.{% endif %}',
        ),
        r"plan\.toml:19: content\[0\]\.body = .*: undefined name 'endpoint\.ten' "
        r"\(for endpoint bulletin:06112\)",
    ),
    "title naming a field the unit does not have": (
        WEEKLY_PLAN.replace("Thủ tục mới — {{ unit.name }}", "Thủ tục mới — {{ unit.ten_xa }}"),
        r"plan\.toml:18: content\[0\]\.title = 'Thủ tục mới — \{\{ unit\.ten_xa \}\}': "
        r"undefined name 'unit\.ten_xa' \(for endpoint bulletin:06040\)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_plan_file_exits_non_zero_naming_field_and_changes_nothing(
    case: str, cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text, message = CASES[case]
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output.replace("\n", " ")), result.output
    assert snapshot(engine) == before


def test_duplicate_plan_number_is_refused_and_changes_nothing(
    cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = cli("plan", "import", str(write_plan(tmp_path)))
    assert first.exit_code == 0, first.output
    before = snapshot(engine)
    again = write_plan(tmp_path, WEEKLY_PLAN.replace("CCHC Mon/Thu", "Other"), "again.toml")
    result = cli("plan", "import", str(again))
    assert result.exit_code == 2
    assert "again.toml:2: plan.number = '95/KH-UBND': a plan with this number already" in (
        result.output.replace("\n", " ")
    )
    assert snapshot(engine) == before


def test_every_error_of_a_file_is_reported_at_once(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = WEEKLY_PLAN.replace('zone = "Asia/Ho_Chi_Minh"', 'zone = "Mars/Base"').replace(
        "FREQ=WEEKLY", "FREQ=SOMETIMES"
    )
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2
    assert "plan.zone = 'Mars/Base'" in result.output
    assert "schedules[0].rrule = 'FREQ=SOMETIMES;BYDAY=MO,TH'" in result.output


@pytest.mark.parametrize("until", ["", "until = 2022-06-30\n"])
def test_past_period_clip_ends_the_schedule_with_the_plan(until: str, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = WEEKLY_PLAN.replace("until = 2021-12-31\n", until).replace(
        'zone = "Asia/Ho_Chi_Minh"', 'zone = "Asia/Ho_Chi_Minh"\npast_period = "clip"'
    )
    imported = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert imported.exit_code == 0, imported.output
    preview = cli("schedule", "preview", "95/KH-UBND", "--from", "27/12/2021", "--days", "14")
    assert preview.exit_code == 0, preview.output
    assert "Thứ năm 30/12/2021 06:00" in preview.output
    assert "2022" not in preview.output.split("\n", 2)[-1]
    assert "2 occurrences, 6 deliveries" in preview.output


def test_past_period_takes_refuse_or_clip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = WEEKLY_PLAN.replace(
        'zone = "Asia/Ho_Chi_Minh"', 'zone = "Asia/Ho_Chi_Minh"\npast_period = "cut"'
    )
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2
    assert "plan.toml:9: plan.past_period = 'cut': Input should be 'refuse' or 'clip'" in (
        result.output.replace("\n", " ")
    )


def test_phone_numbers_are_kept_in_one_form_and_match_across_sections(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    imported = cli("plan", "import", str(write_plan(tmp_path, SMS_REMINDER_PLAN)))
    assert imported.exit_code == 0, imported.output
    listed = cli("endpoints", "list", "--channel", "sms")
    assert listed.output.count("+84912345678") == 1, listed.output
    assert "0912" not in listed.output
    preview = cli("schedule", "preview", "12/KH-UBND", "--from", "03/05/2021", "--days", "1")
    assert preview.exit_code == 0, preview.output
    assert "1 occurrences, 1 deliveries" in preview.output


def test_an_address_the_channel_refuses_is_named_wherever_it_is_written(
    cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = (
        SMS_REMINDER_PLAN.replace('address = "0912 345 678"', 'address = "0912 345"')
        .replace('endpoints = ["0912345678"]', 'endpoints = ["0912345678", "113"]')
        .replace('endpoints = ["+84 912 345 678"]', 'endpoints = ["024 3825 3536"]')
    )
    before = snapshot(engine)
    result = cli("plan", "import", str(write_plan(tmp_path, text)))
    assert result.exit_code == 2
    output = result.output.replace("\n", " ")
    assert "plan.toml:16: endpoints[0].address = '0912 345': not a valid number" in output
    assert "plan.toml:23: groups[0].endpoints = '113': not a valid number" in output
    assert (
        "plan.toml:29: schedules[0].targets.endpoints = '024 3825 3536': "
        "not a mobile number (SMS cannot reach it)" in output
    )
    assert snapshot(engine) == before


def test_a_schedule_may_reach_its_endpoints_through_an_earlier_plans_group(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = WEEKLY_PLAN.replace(
        "[[schedules]]",
        '[[groups]]\nname = "hai-xa"\nchannel = "web"\n'
        'endpoints = ["bulletin:06040", "bulletin:06046"]\n\n[[schedules]]',
    )
    assert cli("plan", "import", str(write_plan(tmp_path, first))).exit_code == 0
    second = WEEKLY_PLAN.replace('number = "95/KH-UBND"', 'number = "96/KH-UBND"').replace(
        'targets = { units = ["20"] }', 'targets = { groups = ["hai-xa"] }'
    )
    second = "\n\n".join(b for b in second.split("\n\n") if not b.startswith("[[endpoints]]"))
    result = cli("plan", "import", str(write_plan(tmp_path, second, "second.toml")))
    assert result.exit_code == 0, result.output
    preview = cli("schedule", "preview", "96/KH-UBND", "--from", "03/05/2021", "--days", "1")
    assert "1 occurrences, 2 deliveries" in preview.output, preview.output
