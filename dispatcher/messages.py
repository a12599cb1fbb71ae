"""Build the channel messages for claimed deliveries: look up the content, plan, unit and
endpoint once per batch, and render the content for the channel."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import Engine, Row, select

from channels.base import Outbound
from channels.endpoints import Endpoint
from channels.registry import needing_audio
from content.media import media_for
from content.models import ContentItem
from content.render import RenderCache, message_context
from coso.units import unit_names
from schedules.models import PRIORITIES, PRIORITY, Plan, Schedule
from schedules.running_order import positions_of, slot_key

PRIORITY_NAMES = {rank: name for name, rank in PRIORITIES.items()}


def build_messages(engine: Engine, claimed: Sequence[Row[Any]]) -> list[Outbound | tuple[int, str]]:
    """An Outbound per delivery, or (delivery id, reason) when it cannot be rendered."""
    content_t, plan_t, endpoint_t = ContentItem.__table__, Plan.__table__, Endpoint.__table__
    with engine.connect() as conn:
        contents = {
            r.id: r
            for r in conn.execute(
                select(content_t).where(content_t.c.id.in_({d.content_id for d in claimed}))
            )
        }
        plans = {
            r.id: r
            for r in conn.execute(
                select(plan_t).where(plan_t.c.id.in_({d.plan_id for d in claimed}))
            )
        }
        endpoints = {
            r.id: r
            for r in conn.execute(
                select(endpoint_t).where(endpoint_t.c.id.in_({d.endpoint_id for d in claimed}))
            )
        }
        options = _options(conn, {d.schedule_id for d in claimed})
    names = unit_names(engine, {d.unit_code for d in claimed if d.unit_code})
    ranked = PRIORITIES[PRIORITY]
    places = positions_of(
        engine,
        [(d.unit_code, d.scheduled_for, d.schedule_id) for d in claimed if d.priority == ranked],
    )
    with_audio = needing_audio()
    audio = media_for(engine, {d.content_id for d in claimed if d.channel in with_audio})
    out: list[Outbound | tuple[int, str]] = []
    renders = RenderCache()
    for d in claimed:
        content, plan, endpoint = contents[d.content_id], plans[d.plan_id], endpoints[d.endpoint_id]
        if content.state != "approved":
            out.append((d.id, f"content {content.key!r} is {content.state}, not approved"))
            continue
        extra = {
            "plan_id": plan.id,
            "plan_number": plan.number,
            "content_kind": content.kind,
            "schedule_id": d.schedule_id,
            "scheduled_for": d.scheduled_for,
            "options": options.get(d.schedule_id) or {},
            # Among the slot's items of its priority in its commune (running order).
            "order": places.get(
                (d.unit_code, slot_key(d.scheduled_for), d.schedule_id), d.schedule_id
            ),
        }
        if d.channel in with_audio:
            asset = audio.get(d.content_id)
            if asset is None:
                out.append((d.id, f"content {content.key!r} has no audio: coso content audio"))
                continue
            extra["media"] = {"sha256": asset.sha256, "duration": asset.duration_seconds}
        sources = {  # what each context name is made from
            "plan": d.plan_id,
            "unit": d.unit_code,
            "endpoint": d.endpoint_id,
            "recipient": d.endpoint_id,
            "scheduled_for": d.scheduled_for,
            "local_time": (d.scheduled_for, d.plan_id),
            "content": d.content_id,
        }
        try:
            rendered = renders.render(
                d.channel,
                content.title,
                content.body,
                sources,
                partial(
                    message_context,
                    plan,
                    content,
                    endpoint,
                    d.unit_code,
                    names.get(d.unit_code, ""),
                    d.scheduled_for,
                ),
            )
        except Exception as exc:  # a template that fails for this endpoint fails only it
            out.append((d.id, f"content {content.key!r} does not render: {exc}"))
            continue
        out.append(
            Outbound(
                delivery_id=d.id,
                endpoint_id=d.endpoint_id,
                address=endpoint.address,
                unit_code=d.unit_code,
                attempt=d.attempts,
                priority=PRIORITY_NAMES.get(d.priority, "normal"),
                expires_at=d.expires_at,
                title=rendered.title,
                body=rendered.body,
                extra=extra,
            )
        )
    return out


def _options(conn: Any, schedule_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Schedule → its channel options (from the plan file, checked by the channel)."""
    if not schedule_ids:
        return {}
    table = Schedule.__table__
    rows = conn.execute(select(table.c.id, table.c.options).where(table.c.id.in_(schedule_ids)))
    return dict(rows.all())
