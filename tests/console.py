"""Signing in to the console as a browser would: fetch the form (its CSRF token), post it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine

from coso.users import add_user

PASSWORD = "mật-khẩu-đủ-dài"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: httpx.Response) -> str:
    found = TOKEN.search(page.text)
    assert found, f"no CSRF token in {page.url}"
    return found.group(1)


def make_user(engine: Engine, login: str, roles: list[str], units: list[str], **extra: Any) -> None:
    add_user(
        engine,
        login=login,
        name=login.replace("-", " ").title(),
        password=PASSWORD,
        roles=roles,
        unit_codes=units,
        now=datetime.now(UTC),
        **extra,
    )


class Session(httpx.Client):
    """A client already signed in; `with` closes it at the end."""

    def __enter__(self) -> Session:
        return self


def signed_in(base_url: str, login: str, password: str = PASSWORD) -> Session:
    client = Session(base_url=base_url, follow_redirects=False)
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={"login": login, "password": password, "csrf_token": token_of(form), "next": "/"},
    )
    assert answer.status_code == 303, (
        f"{login} could not log in: {answer.status_code} {answer.text[:300]}"
    )
    return client


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Post `data` to `action` with the token from `page`, as its form would."""
    token = token_of(client.get(page))
    return client.post(action, data={**data, "csrf_token": token})
