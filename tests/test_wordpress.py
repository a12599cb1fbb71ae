"""Web posts to a WordPress site over its REST API, through a real local HTTP server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update

from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.helpers import SLOT
from tests.plans import WEEKLY_PLAN, write_plan
from tests.wordpress_server import PASSWORD, USER, WordPressServer

WP_PLAN = WEEKLY_PLAN.replace(
    'targets = { units = ["20"] }', 'targets = { endpoints = ["wordpress:langson"] }'
).replace(
    "[[schedules]]",
    '[[endpoints]]\nchannel = "web"\naddress = "wordpress:langson"\nunit = "20"\n\n[[schedules]]',
)


def _with_site(settings: Settings, url: str, password: str = PASSWORD) -> Settings:
    site = {"name": "langson", "url": url, "username": USER, "application_password": password}
    data = settings.model_dump()
    data["channels"]["web"]["sites"] = [site]
    return Settings(**data)


def _imported(
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    url: str,
    password: str = PASSWORD,
) -> Settings:
    """Settings with the WordPress site at `url`, and the plan that posts to it imported."""
    settings = _with_site(settings, url, password)
    import_plan_file(engine, settings, write_plan(tmp_path, WP_PLAN), clock.now())
    return settings


def _delivery(engine: Engine) -> Delivery:
    with engine.connect() as conn:
        return conn.execute(select(Delivery.__table__)).one()  # type: ignore[return-value]


def test_post_published_to_wordpress_with_auth_and_body(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    with WordPressServer() as wp:
        settings = _imported(engine, settings, clock, tmp_path, wp.url)
        clock.set(SLOT)
        Dispatcher(engine, settings, clock).tick()
        assert len(wp.posts) == 1
        post = wp.posts[0]
        assert post["title"]["raw"] == "Thủ tục mới — Lạng Sơn"
        assert "Thứ hai 03/05/2021 06:00" in post["content"]["raw"]
        assert post["status"] == "publish"
        delivery = _delivery(engine)
        assert delivery.state == "delivered"
        assert delivery.provider_id == "wordpress:langson/1"
        assert post["slug"] == f"coso-{delivery.id}"


def test_server_error_is_retried_with_backoff_then_published_once(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    with WordPressServer() as wp:
        settings = _imported(engine, settings, clock, tmp_path, wp.url)
        wp.fail_next = [503]
        clock.set(SLOT)
        dispatcher = Dispatcher(engine, settings, clock)
        dispatcher.tick()
        delivery = _delivery(engine)
        assert (delivery.state, delivery.last_error) == (
            "retry_wait",
            f"HTTP 503 from {wp.url}/wp-json/wp/v2/posts",
        )
        assert delivery.next_attempt_at == SLOT + timedelta(seconds=10)
        clock.set(SLOT + timedelta(seconds=11))
        dispatcher.tick()
        assert _delivery(engine).state == "delivered"
        assert len(wp.posts) == 1
        # attempt 2 looked for an earlier post with the same slug before posting
        assert wp.requests[-2:] == [
            ("GET", "/wp-json/wp/v2/posts"),
            ("POST", "/wp-json/wp/v2/posts"),
        ]


def test_send_lost_in_a_crash_is_not_posted_twice(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    with WordPressServer() as wp:
        settings = _imported(engine, settings, clock, tmp_path, wp.url)
        clock.set(SLOT)
        dispatcher = Dispatcher(engine, settings, clock)
        dispatcher.tick()
        assert len(wp.posts) == 1
        # As if the process died after WordPress took the post but before coso recorded it.
        with engine.begin() as conn:
            conn.execute(update(Delivery.__table__).values(state="sending", provider_id=None))
        restarted = Dispatcher(engine, settings, clock)
        restarted.recover()
        restarted.tick()
        assert len(wp.posts) == 1
        assert _delivery(engine).provider_id == "wordpress:langson/1"


def test_rejected_credentials_fail_permanently_with_the_code(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    with WordPressServer() as wp:
        settings = _imported(engine, settings, clock, tmp_path, wp.url, password="wrong")
        clock.set(SLOT)
        Dispatcher(engine, settings, clock).tick()
        delivery = _delivery(engine)
        assert delivery.state == "failed"
        assert delivery.attempts == 1
        assert delivery.last_error.startswith("rest_cannot_create: HTTP 401")
        with engine.connect() as conn:
            logged = conn.execute(
                select(ActivityEntry.event, ActivityEntry.detail).where(
                    ActivityEntry.state == "failed"
                )
            ).all()
        assert [(e, d.split(":")[0]) for e, d in logged] == [("failed", "rest_cannot_create")]
        assert wp.posts == []
