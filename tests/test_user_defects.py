"""What a user meets first: the Atom feed's charset, the API docs without internet, `coso init`,
`coso units show` and `coso sms import --dry-run`."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from coso.config import Settings
from dispatcher.web import create_app
from tests.conftest import ServerThread


def test_atom_feed_says_its_charset(engine: Engine, settings: Settings) -> None:
    with ServerThread(create_app(engine, settings)) as server:
        feed = httpx.get(f"{server.url}/bulletin.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert "Bản tin cơ sở" in feed.content.decode("utf-8")
