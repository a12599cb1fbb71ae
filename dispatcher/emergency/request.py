"""What someone asks for when they declare an emergency, checked whole before anything is
written: every bad field is refused with its name and value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from channels import registry
from coso.clock import as_utc, zone
from coso.config import Settings
from coso.durations import parse_duration
from coso.errors import InputError
from coso.units import UnitTree

TITLE_MOST = 120
TEXT_MOST = 2000


@dataclass(frozen=True)
class EmergencyRequest:
    text: str
    units: list[str]
    channels: list[str] | None = None  # None: every channel set up with endpoints there
    audio: Path | None = None
    until: datetime | None = None  # None: now + [emergency] validity
    drill: bool = False
    title: str | None = None
    source: str = "cli"  # "cli", "console:<login>", "cap:<identifier>"
    skip_opt_outs: bool = False
    cancel_sms: bool = True


def check_text(text: str | None, field: str = "text") -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise InputError(field, text or "", "nội dung khẩn cấp trống")
    if len(cleaned) > TEXT_MOST:
        raise InputError(field, cleaned[:40] + "…", f"dài quá {TEXT_MOST} ký tự")
    return cleaned


def check_title(title: str | None, text: str) -> str:
    if title is not None and title.strip():
        cleaned = " ".join(title.split())
        if len(cleaned) > TITLE_MOST:
            raise InputError("title", cleaned[:40] + "…", f"dài quá {TITLE_MOST} ký tự")
        return cleaned
    first = " ".join(text.split())
    return first if len(first) <= 80 else first[:79].rstrip() + "…"


def check_units(tree: UnitTree, units: list[str], field: str = "units") -> list[str]:
    codes = [u.strip() for u in units if u and u.strip()]
    if not codes:
        raise InputError(field, ",".join(units), "chọn ít nhất một đơn vị hành chính")
    found: list[str] = []
    for code in codes:
        try:
            current = tree.current_for(code)
        except InputError as exc:
            raise InputError(field, code, "không phải mã đơn vị hành chính nào") from exc
        if current not in found:
            found.append(current)
    return found


def check_channels(settings: Settings, channels: list[str] | None) -> list[str] | None:
    if channels is None:
        return None
    names = [c.strip() for c in channels if c and c.strip()]
    if not names:
        raise InputError("channels", ",".join(channels), "chọn ít nhất một kênh")
    ready = set(registry.configured(settings))
    for name in names:
        plugin = registry.plugins().get(name)
        if plugin is None:
            raise InputError(
                "channels", name, f"không có kênh này; có: {', '.join(registry.names())}"
            )
        if name not in ready:
            raise InputError(
                "channels", name, f"kênh chưa được cài đặt: {plugin.not_configured_hint}"
            )
    return list(dict.fromkeys(names))


def check_until(until: datetime | None, now: datetime, settings: Settings) -> datetime:
    if until is None:
        return as_utc(now) + parse_duration(settings.emergency.validity)
    if until.tzinfo is None:
        raise InputError("until", until.isoformat(), "cần múi giờ")
    if as_utc(until) <= as_utc(now):
        shown = as_utc(until).astimezone(zone(settings.timer.default_zone))
        raise InputError("until", f"{shown:%d/%m/%Y %H:%M}", "thời điểm kết thúc đã qua")
    return as_utc(until)


UNTIL_LOCAL = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})$")


def parse_until(
    text: str | None, now: datetime, tz: str, field: str = "--until"
) -> datetime | None:
    """`--until`: a length from now ("6h", "90m") or a local time "dd/mm/yyyy HH:MM"."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = UNTIL_LOCAL.match(text)
    if match:
        day, month, year, hour, minute = (int(g) for g in match.groups())
        try:
            local = datetime(year, month, day, hour, minute, tzinfo=zone(tz))
        except ValueError as exc:
            raise InputError(field, text, f"không phải ngày giờ có thật: {exc}") from exc
        return as_utc(local)
    try:
        return as_utc(now) + parse_duration(text)
    except (InputError, ValueError) as exc:
        raise InputError(
            field, text, "cần một khoảng (6h, 90m) hoặc ngày giờ dd/mm/yyyy HH:MM"
        ) from exc
