"""Settle SMS deliveries whose outcome was lost (`unknown`: coso died, or the gateway's answer
never came) by asking the gateway what it has: its message list, filtered by recipient and
date, matched on the exact text. Found: the delivery takes the message's sid and status.
Not found: the request never reached the gateway, so the message is sent (once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from channels.base import Outbound, Outcome
from channels.host import ChannelHost
from channels.sms.channel import SmsChannel, gateway_error, sms_text
from channels.sms.status import gateway_state
from channels.states import FAILED, RETRY_WAIT, UNKNOWN
from coso.clock import as_utc

CHANNEL = "sms"
ACTOR = "dispatcher:reconcile"
SLACK = timedelta(minutes=5)  # clocks of coso and the gateway differ a little


@dataclass
class ReconcileReport:
    looked_up: int = 0
    found: Counter[str] = field(default_factory=Counter)  # state → deliveries
    resent: int = 0  # not at the gateway: queued to send
    errors: list[str] = field(default_factory=list)


def unknown_deliveries(host: ChannelHost) -> list[Any]:
    return host.deliveries(CHANNEL, (UNKNOWN,), limit=1_000_000)


def reconcile(
    host: ChannelHost,
    channel: SmsChannel,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ReconcileReport:
    report = ReconcileReport()
    rows = unknown_deliveries(host)
    if not rows:
        return report
    due = {r.id: as_utc(r.next_attempt_at) for r in rows}
    taken = host.provider_ids(CHANNEL)
    outcomes: list[Outcome] = []
    for item in host.messages(rows):
        if not isinstance(item, Outbound):
            outcomes.append(Outcome(item[0], FAILED, "failed", now, ACTOR, error=item[1]))
            continue
        report.looked_up += 1
        text = sms_text(item, channel.settings.khong_dau).text
        try:
            listed = channel.list_messages(item.address, due[item.delivery_id] - SLACK)
        except Exception as exc:  # the gateway is down: leave it unknown, say why
            report.errors.append(f"delivery {item.delivery_id} ({item.address}): {exc}")
            continue
        matches = sorted(
            (m for m in listed if m.body == text and m.sid not in taken),
            key=lambda m: m.date_created or now,
        )
        if matches:
            found = matches[0]
            taken.add(found.sid)
            state = gateway_state(str(found.status))
            error = (
                gateway_error(found.error_code, found.error_message) if state == FAILED else None
            )
            outcomes.append(
                Outcome(
                    item.delivery_id,
                    state,
                    "reconciled",
                    now,
                    ACTOR,
                    provider_id=found.sid,
                    error=error,
                    detail=f"found at the gateway as {found.sid} ({found.status})",
                )
            )
            report.found[state] += 1
        else:
            outcomes.append(
                Outcome(
                    item.delivery_id,
                    RETRY_WAIT,
                    "reconciled",
                    now,
                    ACTOR,
                    detail="not at the gateway: it never left coso; sending it now",
                    retry_at=now,
                )
            )
            report.resent += 1
        if progress is not None:
            progress(1)
    host.receive(outcomes)
    return report
