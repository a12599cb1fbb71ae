"""A commune operator's "Hôm nay" in the console: the day's station items with one tap to
say "Đã phát" or "Không phát được", the other channels' deliveries with notes, and nothing
of another commune's (403 in the page, the JSON and the forms)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from coso.config import Settings
from dispatcher.web.app import create_app
from tests.conftest import ServerThread
from tests.console import make_user, post_form, signed_in
from tests.helpers import SLOT
from tests.test_station import deliveries, entries, fire, station  # noqa: F401

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
TODAY_A = "/units/06040/today?day=03/05/2021"
TODAY_B = "/units/06046/today?day=03/05/2021"


@pytest.fixture
def console(station: Any, engine: Engine, settings: Settings) -> Iterator[tuple[str, Any]]:  # noqa: F811
    make_user(engine, "van-hanh-a", ["operator"], ["06040"])
    make_user(engine, "van-hanh-b", ["operator"], ["06046"])
    make_user(engine, "xem-a", ["viewer"], ["06040"])
    fire(station, SLOT + timedelta(seconds=1))
    with ServerThread(create_app(engine, settings, station.clock)) as server:
        yield server.url, station


def test_operator_confirms_a_station_item_with_one_tap(console: tuple[str, Any]) -> None:
    url, rig = console
    mine = deliveries(rig.engine)["06040"]
    with signed_in(url, "van-hanh-a") as operator:
        page = operator.get(TODAY_A)
        assert page.status_code == 200
        assert "Thủ tục mới" in page.text and "Kính thưa bà con" in page.text
        assert f"/deliveries/{mine.id}/confirm" in page.text
        rig.clock.set(SLOT + timedelta(minutes=20))
        done = post_form(
            operator, TODAY_A, f"/deliveries/{mine.id}/confirm?unit=06040", {"played_at": "06:05"}
        )
        assert done.status_code == 303
        after = operator.get(done.headers["location"])
        assert "Đã ghi: đã phát" in after.text
        assert "đã xác nhận phát" in after.text
    confirmed = entries(rig.engine, mine.id)[-1]
    assert (confirmed.state, confirmed.actor) == ("confirmed", "van-hanh-a")
    assert confirmed.at == SLOT + timedelta(minutes=5)  # the time the operator gave


def test_operator_says_it_could_not_be_played_with_a_reason(console: tuple[str, Any]) -> None:
    url, rig = console
    mine = deliveries(rig.engine)["06040"]
    with signed_in(url, "van-hanh-a") as operator:
        done = post_form(
            operator,
            TODAY_A,
            f"/deliveries/{mine.id}/not-played?unit=06040",
            {"reason": "mat_dien", "note": "cả thôn mất điện"},
        )
        assert done.status_code == 303
        page = operator.get(done.headers["location"])
        assert "Mất điện: cả thôn mất điện" in page.text  # the reason, on the page
    failed = entries(rig.engine, mine.id)[-1]
    assert (failed.state, failed.actor) == ("failed", "van-hanh-a")


def test_a_time_in_the_future_is_refused_and_changes_nothing(console: tuple[str, Any]) -> None:
    url, rig = console
    mine = deliveries(rig.engine)["06040"]
    with signed_in(url, "van-hanh-a") as operator:
        refused = post_form(
            operator, TODAY_A, f"/deliveries/{mine.id}/confirm?unit=06040", {"played_at": "09:00"}
        )
        assert refused.status_code == 400
        assert "played_at" in refused.text and "tương lai" in refused.text
    assert deliveries(rig.engine)["06040"].state == "sent"


def test_another_communes_operator_gets_403_everywhere(console: tuple[str, Any]) -> None:
    url, rig = console
    theirs = deliveries(rig.engine)["06040"]
    with signed_in(url, "van-hanh-b") as other:
        assert other.get(TODAY_A).status_code == 403
        assert other.get("/units/06040/today.json").status_code == 403
        assert other.get(TODAY_B).status_code == 200
        for action, data in (
            ("confirm", {}),
            ("not-played", {"reason": "mat_dien"}),
            ("note", {"text": "x"}),
        ):
            answer = post_form(other, TODAY_B, f"/deliveries/{theirs.id}/{action}", data)
            assert answer.status_code == 403, action
    with signed_in(url, "xem-a") as viewer:  # reads the commune, cannot confirm for it
        page = viewer.get(TODAY_A)
        assert page.status_code == 200 and "/confirm" not in page.text
        answer = post_form(viewer, TODAY_A, f"/deliveries/{theirs.id}/confirm", {})
        assert answer.status_code == 403
    assert deliveries(rig.engine)["06040"].state == "sent"


def test_operator_adds_a_note_to_a_web_delivery_of_the_commune(console: tuple[str, Any]) -> None:
    url, rig = console
    post = deliveries(rig.engine, "web")["06040"]
    with signed_in(url, "van-hanh-a") as operator:
        page = operator.get(TODAY_A)
        assert f"/deliveries/{post.id}/note" in page.text
        assert f"/deliveries/{post.id}/confirm" not in page.text  # a device reports its own
        done = post_form(
            operator,
            TODAY_A,
            f"/deliveries/{post.id}/note?unit=06040",
            {"text": "dán cả ở nhà văn hóa"},
        )
        assert done.status_code == 303
        refused = post_form(operator, TODAY_A, f"/deliveries/{post.id}/confirm?unit=06040", {})
        assert refused.status_code == 400 and "không cần người xác nhận" in refused.text
    note = entries(rig.engine, post.id)[-1]
    assert (note.event, note.actor, note.detail) == ("note", "van-hanh-a", "dán cả ở nhà văn hóa")


def test_an_editor_resends_what_failed_and_it_is_a_task_again(
    console: tuple[str, Any], engine: Engine
) -> None:
    url, rig = console
    make_user(engine, "bien-tap", ["editor"], ["20"])
    mine = deliveries(rig.engine)["06040"]
    with signed_in(url, "van-hanh-a") as operator:
        post_form(
            operator,
            TODAY_A,
            f"/deliveries/{mine.id}/not-played?unit=06040",
            {"reason": "mat_dien"},
        )
    with signed_in(url, "bien-tap") as editor:
        plan = "/plans/21/KH-UBND"
        answer = post_form(editor, plan, plan + "/resend", {})
        assert answer.status_code == 200
        assert "Đã đưa 1 lượt gửi lỗi vào hàng gửi lại" in answer.text
    assert deliveries(rig.engine)["06040"].state == "pending"
    resent = entries(rig.engine, mine.id)[-1]
    assert (resent.event, resent.actor) == ("resend", "bien-tap")
    fire(rig, SLOT + timedelta(minutes=30))  # the sender takes it again: a task once more
    assert deliveries(rig.engine)["06040"].state == "sent"
    with signed_in(url, "van-hanh-a") as operator:
        assert f"/deliveries/{mine.id}/confirm" in operator.get(TODAY_A).text
    with signed_in(url, "van-hanh-b") as other:  # an operator does not resend
        assert post_form(other, TODAY_B, "/plans/21/KH-UBND/resend", {}).status_code == 403
