"""Content rendered per delivery: per-endpoint text stays per endpoint, HTML is escaped."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from channels.endpoints import Endpoint
from channels.web.channel import BulletinPost
from coso.clock import ManualClock
from coso.config import Settings
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from tests.helpers import SLOT
from tests.plans import WEEKLY_PLAN, write_plan


def _posts(engine: Engine) -> dict[str, BulletinPost]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Endpoint.address, BulletinPost.__table__)
            .join(Delivery, Delivery.id == BulletinPost.delivery_id)
            .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        ).all()
    return {r.address: r for r in rows}


def test_text_naming_the_endpoint_is_rendered_for_each_endpoint(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    plan = WEEKLY_PLAN.replace(
        "Kính gửi bà con {{ unit.name }}.", "Gửi {{ endpoint.address }} ({{ unit.name }})."
    )
    import_plan_file(engine, settings, write_plan(tmp_path, plan), clock.now())
    clock.set(SLOT)
    Dispatcher(engine, settings, clock).tick()
    posts = _posts(engine)
    assert len(posts) == 3
    for address, post in posts.items():
        assert f"Gửi {address} (" in post.body_html


def test_markup_in_content_is_escaped_in_the_post(
    engine: Engine, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    plan = WEEKLY_PLAN.replace(
        "Kính gửi bà con {{ unit.name }}.", "<script>alert(1)</script> & <b>bà con</b>"
    )
    import_plan_file(engine, settings, write_plan(tmp_path, plan), clock.now())
    clock.set(SLOT)
    Dispatcher(engine, settings, clock).tick()
    body = next(iter(_posts(engine).values())).body_html
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bà con&lt;/b&gt;" in body
