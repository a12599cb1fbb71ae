"""An emergency on SMS: whether numbers that opted out are reached, and the text telling
people it is called off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from channels.registry import EmergencyCall, EmergencyEnd

NOTICE_VALID = timedelta(hours=6)


def emergency_options(cfg: Any, call: EmergencyCall) -> dict[str, Any]:
    return {"opt_outs": "skip" if call.skip_opt_outs else cfg.emergency.opt_outs}


def end_emergency(host: Any, cfg: Any, end: EmergencyEnd) -> str:
    if end.notice is None or not end.targets:
        return "không gửi tin báo huỷ"
    from channels.endpoints import resolve_targets

    if not resolve_targets(host.engine, "sms", dict(end.targets)):
        return "không có số nào để báo huỷ"
    schedule = host.add_blast(
        end.plan,
        end.notice,
        "sms",
        dict(end.targets),
        end.now,
        priority="emergency",
        validity=NOTICE_VALID,
        options=dict(end.options),
    )
    return f"tin báo huỷ đang gửi (lịch {schedule.id})"
