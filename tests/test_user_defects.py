"""What a user meets first: the Atom feed's charset, the API docs without internet, `coso init`,
`coso units show` and `coso sms import --dry-run`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from coso.config import Settings
from dispatcher.cli import app
from dispatcher.web import create_app
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
