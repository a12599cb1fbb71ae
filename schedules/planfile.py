"""The plan file format (TOML) and its structural validation; see docs/plan-file.md."""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coso.errors import InputError, InputErrors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanHeader(_Strict):
    number: str = Field(min_length=1)
    title: str = Field(min_length=1)
    issuer: str = ""
    organisation: str | None = None
    issued_on: date | None = None
    period_start: date
    period_end: date
    zone: str | None = None
    # A schedule that runs past period_end: refused, or ended with the period ("clip").
    past_period: Literal["refuse", "clip"] = "refuse"


class TargetEntry(_Strict):
    channel: str
    count: int = Field(ge=1)
    per: Literal["day", "week", "month", "plan"]
    units: list[str] = []
    note: str = ""


class ContentEntry(_Strict):
    key: str = Field(min_length=1)
    kind: Literal["text", "audio", "article"] = "article"
    title: str = Field(min_length=1)
    body: str = ""
    state: Literal["draft", "approved", "retired"] = "draft"
    approved_by: str | None = None
    # An audio file (relative to the plan file), prepared at import as its audio.
    audio: str | None = Field(default=None, min_length=1)


class EndpointEntry(_Strict):
    channel: str
    address: str = Field(min_length=1)
    name: str = ""
    unit: str | None = None


class GroupEntry(_Strict):
    name: str = Field(min_length=1)
    channel: str
    units: list[str] = []
    endpoints: list[str] = []
    description: str = ""


class TargetSpec(_Strict):
    endpoints: list[str] = []
    groups: list[str] = []
    units: list[str] = []


class ScheduleEntry(_Strict):
    name: str = Field(min_length=1)
    content: str
    channel: str
    targets: TargetSpec
    start: datetime
    rrule: str | None = None
    until: datetime | date | None = None
    exdates: list[datetime] = []
    priority: Literal["normal", "priority", "emergency"] = "normal"
    validity: str | int | None = None
    misfire_grace: str | int | None = None
    resend_unknown: bool = False
    # The channel's own options (SMS: khong_dau), checked by its plugin at import.
    options: dict[str, Any] = {}
    enabled: bool = True


class PlanFile(_Strict):
    plan: PlanHeader
    targets: list[TargetEntry] = []
    content: list[ContentEntry] = []
    endpoints: list[EndpointEntry] = []
    groups: list[GroupEntry] = []
    schedules: list[ScheduleEntry] = []


def read_plan_file(path: Path) -> tuple[PlanFile, str]:
    """Parse and structurally validate; errors carry the file, line and field."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("file", source, "not found") from exc
    except UnicodeDecodeError as exc:
        raise InputError("file", source, "is not UTF-8 text") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise InputError(
            "toml", source, f"malformed TOML: {exc}", source=source, line=line
        ) from exc
    try:
        return PlanFile.model_validate(data), text
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            errors.append(
                InputError(
                    field_path(loc),
                    err.get("input"),
                    err["msg"],
                    source=source,
                    line=locate(text, loc),
                )
            )
        raise InputErrors(errors) from exc


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best line for a field: the n-th [[table]] header, then the key below it."""
    lines = text.splitlines()
    start = 0
    if not loc:
        return None
    section = str(loc[0])
    index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    keys = [str(p) for p in loc[2 if index is not None else 1 :] if not isinstance(p, int)]
    header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
    seen = -1
    for number, line in enumerate(lines):
        if header.match(line):
            seen += 1
            if index is None or seen == index:
                start = number
                break
    else:
        return None
    for key in keys[:1]:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start + 1, len(lines)):
            if lines[number].lstrip().startswith("["):
                break
            if pattern.match(lines[number]):
                return number + 1
    return start + 1


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None
