"""What a blast would send, before anything is sent: every recipient's text rendered
(strictly: one failure stops the blast), its encoding and segments, and the totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from channels.endpoints import Endpoint, resolve_targets
from channels.sms.recipients import opted_out
from content.render import message_context, render
from content.sms_text import SmsLength, measure, prepare
from coso.errors import InputError, InputErrors
from coso.units import unit_names
from schedules.adhoc import find_content
from schedules.models import Plan


@dataclass(frozen=True)
class PreviewRow:
    phone: str
    name: str
    text: str
    length: SmsLength


@dataclass
class BlastPreview:
    rows: list[PreviewRow] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)  # skipped (non-emergency blast)

    @property
    def messages(self) -> int:
        return len(self.rows)

    @property
    def segments(self) -> int:
        return sum(r.length.segments for r in self.rows)

    def encodings(self) -> Counter[str]:
        return Counter(r.length.encoding for r in self.rows)


def preview_blast(
    engine: Engine,
    plan: Plan,
    content_key: str,
    targets: dict[str, list[str]],
    when: datetime,
    *,
    khong_dau: bool,
    emergency: bool = False,
) -> BlastPreview:
    """Render the blast for every recipient. Raises InputErrors naming each recipient whose
    text does not render (a missing variable), so nothing is sent."""
    content = find_content(engine, plan, content_key)
    chosen = resolve_targets(engine, "sms", targets)
    if not chosen:
        raise InputError("to", targets, "names no enabled sms recipient")
    E = Endpoint.__table__
    with engine.connect() as conn:
        endpoints = {
            r.id: r for r in conn.execute(select(E).where(E.c.id.in_([eid for eid, _ in chosen])))
        }
    names = unit_names(engine, {unit for _, unit in chosen if unit})
    stopped = set() if emergency else opted_out(engine, [e.address for e in endpoints.values()])
    preview = BlastPreview()
    errors: list[InputError] = []
    for eid, unit in chosen:
        endpoint = endpoints[eid]
        if endpoint.address in stopped:
            preview.opted_out.append(endpoint.address)
            continue
        context = message_context(plan, content, endpoint, unit, names.get(unit or "", ""), when)
        try:
            body = render("sms", content.title, content.body, context).body
        except InputError as exc:
            errors.append(InputError("recipient", endpoint.address, exc.reason))
            continue
        text = prepare(body, plain=khong_dau)
        preview.rows.append(PreviewRow(endpoint.address, endpoint.name, text, measure(text)))
    if errors:
        raise InputErrors(errors)
    return preview
