"""Who may open what in the console: logins, sessions, CSRF, slowed brute force, and for
each role a table of routes × units answering 200 or 403, in HTML, JSON and downloads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import Engine

from coso.config import Settings
from coso.users import disable_user
from dispatcher.transitions import append_log
from dispatcher.web.app import create_app
from schedules.importer import import_plan_file
from tests.conftest import ServerThread
from tests.console import PASSWORD, make_user, post_form, signed_in, token_of
from tests.plans import FOREST_PLAN, SMS_REMINDER_PLAN, WEEKLY_PLAN, write_plan
from tests.sms import sms_settings

# Who may see what does not depend on the database: SQLite only (hashing seven passwords
# per test is the slow part).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

PHONE_DIGITS = re.compile(r"\+?84\s?9\d{2}\s?\d{3}\s?\d{3}|0912\s?345\s?678")


@pytest.fixture
def console(
    engine: Engine, settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, Engine, Settings]]:
    now = datetime(2021, 5, 2, tzinfo=UTC)
    sms = sms_settings(settings, "http://127.0.0.1:9")  # no message is sent here
    for i, text in enumerate([WEEKLY_PLAN, SMS_REMINDER_PLAN, FOREST_PLAN]):
        import_plan_file(engine, sms, write_plan(tmp_path, text, f"p{i}.toml"), now)
    make_user(engine, "admin", ["administrator"], [])
    make_user(engine, "bien-tap", ["editor"], ["20"])
    make_user(engine, "duyet", ["approver"], ["20"])
    make_user(engine, "van-hanh-a", ["operator"], ["06040"])
    make_user(engine, "van-hanh-b", ["operator"], ["06112"])
    make_user(engine, "xem-a", ["viewer"], ["06040"])
    make_user(engine, "xem-b", ["viewer"], ["06112"])
    with ServerThread(create_app(engine, sms)) as server:
        yield server.url, engine, sms


# route → who gets 200 (everyone else signed in gets 403)
PLAN_A = "/plans/12/KH-UBND"  # the SMS reminder: commune 06040 only
PLAN_B = "/plans/7/KH-UBND"  # commune 06112 only
ROUTES: dict[str, set[str]] = {
    "/": {"admin", "bien-tap", "duyet", "van-hanh-a", "van-hanh-b", "xem-a", "xem-b"},
    PLAN_A: {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    PLAN_A + ".json": {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    PLAN_A + "/log.csv": {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    PLAN_A + "/report": {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    PLAN_A + "/report.xlsx": {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    PLAN_B: {"admin", "bien-tap", "duyet", "van-hanh-b", "xem-b"},
    PLAN_B + ".json": {"admin", "bien-tap", "duyet", "van-hanh-b", "xem-b"},
    PLAN_B + "/log.csv": {"admin", "bien-tap", "duyet", "van-hanh-b", "xem-b"},
    PLAN_B + "/report.docx": {"admin", "bien-tap", "duyet", "van-hanh-b", "xem-b"},
    "/devices?unit=06040": {"admin", "bien-tap", "duyet", "van-hanh-a", "xem-a"},
    "/devices.json?unit=06112": {"admin", "bien-tap", "duyet", "van-hanh-b", "xem-b"},
    "/users": {"admin"},
}
USERS = ["admin", "bien-tap", "duyet", "van-hanh-a", "van-hanh-b", "xem-a", "xem-b"]


def test_each_role_gets_200_on_its_units_and_403_elsewhere(
    console: tuple[str, Engine, Settings],
) -> None:
    url, _, _ = console
    answers: dict[tuple[str, str], int] = {}
    for login in USERS:
        with signed_in(url, login) as client:
            for route in ROUTES:
                answers[(login, route)] = client.get(route).status_code
    expected = {
        (login, r): 200 if login in ok else 403 for r, ok in ROUTES.items() for login in USERS
    }
    assert answers == expected
    # JSON routes say 403 in JSON, pages in Vietnamese HTML.
    with signed_in(url, "van-hanh-a") as client:
        refused = client.get(PLAN_B + ".json")
        assert refused.status_code == 403 and "không phụ trách" in refused.json()["detail"]
        page = client.get(PLAN_B)
        assert "Không có quyền" in page.text


def test_nothing_but_the_bulletin_is_open_without_a_login(
    console: tuple[str, Engine, Settings],
) -> None:
    url, _, _ = console
    with httpx.Client(base_url=url) as anyone:
        for route in ROUTES:
            answer = anyone.get(route)
            if ".json" in route:
                assert answer.status_code == 401, route
            else:
                assert answer.status_code == 303, route
                assert answer.headers["location"].startswith("/login?next=")
        assert anyone.get("/bulletin").status_code == 200
        assert anyone.get("/bulletin.atom").status_code == 200


def test_a_viewer_sees_no_phone_number_but_an_editor_does(
    console: tuple[str, Engine, Settings],
) -> None:
    url, engine, _ = console
    from sqlalchemy import select

    from channels.endpoints import Endpoint
    from schedules.models import Plan

    with engine.begin() as conn:
        plan_id = conn.scalar(
            select(Plan.__table__.c.id).where(Plan.__table__.c.number == "12/KH-UBND")
        )
        endpoint_id = conn.scalar(
            select(Endpoint.__table__.c.id).where(Endpoint.__table__.c.channel == "sms")
        )
        append_log(
            conn,
            [
                {
                    "at": datetime(2021, 5, 3, 0, 0, tzinfo=UTC),
                    "plan_id": plan_id,
                    "channel": "sms",
                    "unit_code": "06040",
                    "endpoint_id": endpoint_id,
                    "event": "stop",
                    "state": None,
                    "actor": "sms:+84912345678",
                    "detail": "người nhận +84912345678 nhắn TU CHOI",
                }
            ],
        )
    with signed_in(url, "xem-a") as viewer:
        for route in (PLAN_A, PLAN_A + ".json", PLAN_A + "/log.csv"):
            text = viewer.get(route).text
            assert "stop" in text
            assert not PHONE_DIGITS.search(text), (route, PHONE_DIGITS.search(text))
            assert "••••78" in text
    with signed_in(url, "bien-tap") as editor:
        assert "+84912345678" in editor.get(PLAN_A).text


def test_a_form_without_its_csrf_token_is_refused(console: tuple[str, Engine, Settings]) -> None:
    url, engine, _ = console
    with signed_in(url, "admin") as admin:
        forged = admin.post("/users/xem-b/disable", data={})
        assert forged.status_code == 403
        assert "CSRF" in forged.text
        wrong = admin.post("/users/xem-b/disable", data={"csrf_token": "x" * 32})
        assert wrong.status_code == 403
        from coso.users import find_user

        assert not find_user(engine, "xem-b").disabled
        done = post_form(admin, "/users", "/users/xem-b/disable", {})
        assert done.status_code == 200
        assert find_user(engine, "xem-b").disabled
    with httpx.Client(base_url=url) as anyone:  # the login form itself needs its token
        assert (
            anyone.post("/login", data={"login": "admin", "password": PASSWORD}).status_code == 403
        )


def test_login_brute_force_is_slowed(console: tuple[str, Engine, Settings]) -> None:
    url, _, settings = console
    with httpx.Client(base_url=url) as attacker:
        token = token_of(attacker.get("/login"))
        codes = [
            attacker.post(
                "/login", data={"login": "admin", "password": f"guess{i}", "csrf_token": token}
            ).status_code
            for i in range(settings.console.login_attempts + 2)
        ]
        assert codes[: settings.console.login_attempts] == [401] * settings.console.login_attempts
        assert codes[settings.console.login_attempts :] == [429, 429]
        # Even the right password waits now; the answer says for how long.
        right = attacker.post(
            "/login", data={"login": "admin", "password": PASSWORD, "csrf_token": token}
        )
        assert right.status_code == 429
        assert int(right.headers["Retry-After"]) > 60
        assert "thử lại sau" in right.text
    # Another account from elsewhere is not held back by it.
    with signed_in(url, "duyet") as other:
        assert other.get("/").status_code == 200


def test_a_session_cookie_signed_with_another_key_is_refused(
    console: tuple[str, Engine, Settings],
) -> None:
    url, _, _ = console
    with signed_in(url, "admin") as admin:
        cookie = admin.cookies["coso_session"]
        assert admin.get("/users").status_code == 200
    payload = cookie.split(".")[0]  # the same session, signed with a key coso never had
    forged = TimestampSigner("another-key").sign(payload.encode()).decode()
    with httpx.Client(base_url=url, cookies={"coso_session": forged}) as mallory:
        answer = mallory.get("/users")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login")
    with httpx.Client(base_url=url, cookies={"coso_session": cookie}) as same:
        assert same.get("/users").status_code == 200  # the real cookie still works


def test_a_disabled_account_loses_its_session_and_cannot_log_in(
    console: tuple[str, Engine, Settings],
) -> None:
    url, engine, _ = console
    with signed_in(url, "van-hanh-a") as operator:
        assert operator.get(PLAN_A).status_code == 200
        disable_user(engine, "van-hanh-a", datetime.now(UTC))
        assert operator.get(PLAN_A).status_code == 303
    with pytest.raises(AssertionError, match="could not log in: 401"):
        signed_in(url, "van-hanh-a")


def test_an_administrator_resets_a_password_which_must_then_be_changed(
    console: tuple[str, Engine, Settings],
) -> None:
    url, _, _ = console
    with signed_in(url, "admin") as admin:
        answer = post_form(admin, "/users", "/users/duyet/reset", {})
        temporary = re.search(r"Mật khẩu tạm của duyet \(chỉ hiện một lần\): (\S+)<", answer.text)
        assert temporary, answer.text
    with pytest.raises(AssertionError, match="401"):
        signed_in(url, "duyet")  # the old password no longer works
    with httpx.Client(base_url=url) as approver:
        token = token_of(approver.get("/login"))
        first = approver.post(
            "/login",
            data={"login": "duyet", "password": temporary.group(1), "csrf_token": token},
        )
        assert first.status_code == 303
        assert first.headers["location"] == "/account/password"
        changed = post_form(
            approver,
            "/account/password",
            "/account/password",
            {"current": temporary.group(1), "new": "mới-và-đủ-dài-1", "again": "mới-và-đủ-dài-1"},
        )
        assert "Đã đổi mật khẩu" in changed.text
    signed_in(url, "duyet", "mới-và-đủ-dài-1").close()


def test_a_browser_gets_errors_as_vietnamese_pages_and_programs_as_json(
    console: tuple[str, Engine, Settings],
) -> None:
    url, _, _ = console
    with signed_in(url, "admin") as admin:
        page = admin.get("/plans/99/KH-KHONG", headers={"Accept": "text/html"})
        assert page.status_code == 404
        assert "<h1>Không tìm thấy</h1>" in page.text and "99/KH-KHONG" in page.text
        program = admin.get("/plans/99/KH-KHONG.json")
        assert program.status_code == 404 and "detail" in program.json()
