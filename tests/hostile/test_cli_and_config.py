"""Settings files with bad values or unknown keys, and command-line arguments that make no
sense: refused with one line naming the setting or value, exit code 2, no traceback,
nothing written; and the same command with good input works afterwards."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from sqlalchemy import Engine

from coso.clock import SystemClock
from schedules.importer import import_plan_file
from tests.hostile.conftest import Cli, assert_clear_refusal, assert_unchanged, snapshot
from tests.hostile.strategies import (
    BadArgs,
    BadBytes,
    BadConfig,
    bad_cli_args,
    bad_configs,
    broken_encodings,
)
from tests.plans import write_plan


def _good_config(db_url: str) -> str:
    return f'[database]\nurl = "{db_url}"\n\n[timer]\ndefault_zone = "Asia/Ho_Chi_Minh"\n'


def test_a_settings_file_with_a_bad_value_or_unknown_key_is_refused_naming_it(
    cli: Cli, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    before = snapshot(engine)
    path = tmp_path / "coso.toml"

    @given(bad_configs())
    def refused(bad: BadConfig) -> None:
        path.write_text(bad.text({"database": {"url": db_url}}), encoding="utf-8")
        result = cli("--config", str(path), "plan", "list")
        assert_unchanged(engine, before)
        assert_clear_refusal(result, "coso.toml", bad.field.rsplit(".", 1)[-1])

    refused()
    path.write_text(_good_config(db_url), encoding="utf-8")
    assert cli("--config", str(path), "plan", "list").exit_code == 0


def test_a_settings_file_saved_badly_is_refused_naming_it(
    cli: Cli, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    before = snapshot(engine)
    path = tmp_path / "coso.toml"
    good = _good_config(db_url) + '\n[channels.web]\nrate_per_second = 10.0 # "Tuyên truyền"\n'

    @given(broken_encodings(good))
    def refused(bad: BadBytes) -> None:
        if bad.what in ("empty", "truncated"):
            return  # an empty or shorter settings file may be valid: the defaults
        path.write_bytes(bad.raw)
        result = cli("--config", str(path), "plan", "list")
        assert_unchanged(engine, before)
        assert_clear_refusal(result, "coso.toml")

    refused()


def test_command_line_arguments_that_make_no_sense_are_refused_naming_them(
    cli: Cli,
    engine: Engine,
    settings,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import_plan_file(engine, settings, write_plan(tmp_path), SystemClock().now())
    before = snapshot(engine)

    @given(bad_cli_args())
    @example(BadArgs(["endpoints", "import", str(tmp_path)], str(tmp_path)))  # a folder
    @example(BadArgs(["plan", "import", str(tmp_path)], str(tmp_path)))
    @example(BadArgs(["sms", "import", str(tmp_path)], str(tmp_path)))
    @example(BadArgs(["sms", "optouts", "add", "0912-abc-678"], "0912-abc-678"))
    def refused(bad: BadArgs) -> None:
        result = cli(*bad.args)
        assert_unchanged(engine, before)
        output = result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{type(result.exception).__name__}: {result.exception}"
        )
        assert "Traceback" not in output, output[-2000:]
        if result.exit_code != 0:  # an answer ("no such plan") is fine; a failure is clear
            assert result.exit_code == 2, f"exit code {result.exit_code}: {output[-500:]}"
            assert output.strip(), "refused without a word"

    refused()
    result = cli("schedule", "preview", "95/KH-UBND", "--from", "03/05/2021", "--days", "7")
    assert result.exit_code == 0 and "2 occurrences, 6 deliveries" in result.output, result.output


def test_a_bad_channel_setting_names_the_settings_file(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "coso.toml"
    path.write_text(_good_config(db_url) + "\n[channels.web]\nrate_per_secnd = 5\n")
    result = cli("--config", str(path), "plan", "list")
    assert_clear_refusal(result, f"{path}: channels.web.rate_per_secnd = 5")


def test_a_folder_given_as_a_file_is_refused_naming_it(cli: Cli, tmp_path: Path) -> None:
    for command in (["plan", "import"], ["endpoints", "import"], ["units", "import-legacy"]):
        result = cli(*command, str(tmp_path))
        assert_clear_refusal(result, f"file = '{tmp_path}': là một thư mục, không phải một tệp")
