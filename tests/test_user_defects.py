"""What a user meets first: the Atom feed's charset, the API docs without internet, `coso init`,
`coso units show` and `coso sms import --dry-run`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel
from typer.testing import CliRunner, Result

import dispatcher.tables  # noqa: F401  (every table, for table_counts)
from coso.config import Settings
from dispatcher.cli.app import app
from dispatcher.web.app import create_app
from tests.conftest import ServerThread


def test_atom_feed_says_its_charset(engine: Engine, settings: Settings) -> None:
    with ServerThread(create_app(engine, settings)) as server:
        feed = httpx.get(f"{server.url}/bulletin.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert "Bản tin cơ sở" in feed.content.decode("utf-8")


URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
QUOTED_URL = re.compile(r"""["'](/[^"'\s]*|https?://[^"'\s]*)["']""")


@pytest.mark.parametrize("docs", ["/api/docs", "/redoc"])
def test_api_docs_load_nothing_from_the_internet(
    docs: str, engine: Engine, settings: Settings
) -> None:
    with (
        ServerThread(create_app(engine, settings)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        page = client.get(docs)
        assert page.status_code == 200
        html = page.text
        outside = [
            url
            for url in re.findall(r"https?://[^\s\"'<>)]+", html)
            if not url.startswith(server.url)
        ]
        assert outside == [], f"the docs page loads from outside the app: {outside}"
        assets = set(URL_ATTRIBUTE.findall(html)) | set(QUOTED_URL.findall(html))
        assert any(a.endswith(".js") for a in assets), assets
        assert docs == "/redoc" or any(a.endswith(".css") for a in assets), assets
        for asset in sorted(assets):
            answer = client.get(asset)
            assert answer.status_code == 200, f"{asset}: {answer.status_code}"
            assert answer.content, asset


runner = CliRunner()


@pytest.fixture
def fresh_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings pointing at a SQLite file that does not exist yet."""
    path = tmp_path / "data" / "coso.db"
    monkeypatch.setenv("COSO_DATABASE__URL", f"sqlite:///{path}")
    monkeypatch.delenv("COSO_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def test_init_prints_unit_counts_in_plain_words(fresh_database: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "{" not in result.output and "}" not in result.output, result.output
    assert "34 provinces" in result.output
    assert "3,321 communes" in result.output
    assert fresh_database.is_file()


Cli = Callable[..., Result]


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`coso …` on a migrated database with the current units."""
    monkeypatch.setenv("COSO_DATABASE__URL", db_url)
    monkeypatch.delenv("COSO_CONFIG", raising=False)

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "200"})

    return invoke


def listed_codes(output: str) -> list[str]:
    return re.findall(r"^  (\d{5})  ", output, flags=re.MULTILINE)


def test_units_show_says_when_the_list_is_cut_and_how_to_see_all(cli: Cli) -> None:
    cut = cli("units", "show", "20")
    assert cut.exit_code == 0, cut.output
    assert "Lạng Sơn" in cut.output.splitlines()[0]
    assert len(listed_codes(cut.output)) == 50
    assert "50 of 65 shown" in cut.output and "--all" in cut.output

    every = cli("units", "show", "20", "--all")
    assert every.exit_code == 0, every.output
    assert len(listed_codes(every.output)) == 65
    assert "06040" in listed_codes(every.output) and " of 65" not in every.output

    few = cli("units", "show", "20", "--limit", "5")
    assert len(listed_codes(few.output)) == 5 and "5 of 65 shown" in few.output


@pytest.mark.parametrize(
    "name", ["Lạng Sơn", "lang son", "LẠNG SƠN", "Tỉnh Lạng Sơn", " lạng  sơn "]
)
def test_units_show_finds_a_unit_by_its_name(cli: Cli, name: str) -> None:
    result = cli("units", "show", name, "--all")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("20  Lạng Sơn"), result.output
    assert len(listed_codes(result.output)) == 65


def test_units_show_finds_a_commune_by_its_name(cli: Cli) -> None:
    for name in ("Thất Khê", "xa that khe"):
        result = cli("units", "show", name)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("06040  Xã Thất Khê"), result.output


def test_units_show_lists_the_units_an_ambiguous_name_may_mean(cli: Cli) -> None:
    result = cli("units", "show", "tan tien")
    assert result.exit_code == 2, result.output
    assert "unit = 'tan tien'" in result.output
    assert "give the code of one" in result.output
    assert "06019  Xã Tân Tiến (xã, Lạng Sơn)" in result.output
    assert "01051  Xã Tân Tiến (xã, Tuyên Quang)" in result.output


def test_units_show_names_an_unknown_unit(cli: Cli) -> None:
    name = cli("units", "show", "Không Có Xã Này")
    assert name.exit_code == 2, name.output
    assert "unit = 'Không Có Xã Này': no administrative unit has this code or name" in name.output
    code = cli("units", "show", "99")
    assert code.exit_code == 2, code.output
    assert "unit = '99': is not a known administrative unit code" in code.output


RECIPIENTS = """name,phone,unit,groups
Nguyễn Văn An,0912 345 678,06040,xa-vien
Hoàng Thị Bình,0987654321,06046,xa-vien;hoi-phu-nu
Lý Văn Cường,0253 123 456,06040,xa-vien
"""


def test_sms_import_dry_run_writes_nothing(fresh_database: Path, tmp_path: Path) -> None:
    people = tmp_path / "danh-sach.csv"
    people.write_text(RECIPIENTS, encoding="utf-8")
    result = runner.invoke(app, ["sms", "import", "--dry-run", str(people)])
    assert result.exit_code == 0, result.output
    assert "2 recipient(s) read, 1 row(s) refused" in result.output
    assert "danh-sach.csv:4: phone = '0253 123 456'" in result.output
    assert "nothing saved" in result.output
    assert not fresh_database.exists(), "a dry run created the database"
    assert not fresh_database.parent.exists(), "a dry run created the database's folder"


def test_sms_import_dry_run_on_a_database_changes_nothing(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    people = tmp_path / "danh-sach.csv"
    people.write_text(RECIPIENTS, encoding="utf-8")
    before = table_counts(engine)
    dry = cli("sms", "import", "--dry-run", str(people))
    assert dry.exit_code == 0, dry.output
    assert "2 recipient(s) read, 1 row(s) refused" in dry.output
    assert table_counts(engine) == before
    saved = cli("sms", "import", str(people))
    assert saved.exit_code == 0, saved.output
    assert "2 new" in saved.output
    assert table_counts(engine) != before


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.scalar(select(func.count()).select_from(table)) or 0
            for name, table in SQLModel.metadata.tables.items()
        }
