"""The plan file format (TOML) and its structural validation; see docs/plan-file.md."""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from coso.csvfile import read_text
from coso.errors import InputError, InputErrors
from coso.names import name_problem, nfc, text_problem


def _name(value: str) -> str:
    text = nfc(value).strip()
    problem = name_problem(text)
    if problem:
        raise PydanticCustomError("name", problem)
    return text


def _optional_name(value: str) -> str:
    return _name(value) if value else value


# What identifies a plan, a content item, a group, a schedule (or refers to one): in NFC
# and trimmed, so two spellings of one name are one, never blank, with no hidden characters.
Name = Annotated[str, AfterValidator(_name)]
OptionalName = Annotated[str, AfterValidator(_optional_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanHeader(_Strict):
    number: Name
    title: str = Field(min_length=1)
    issuer: str = ""
    organisation: Name | None = None
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
    key: Name
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
    name: OptionalName = ""
    unit: str | None = None
    test: bool = False  # a test endpoint: the only kind a drill reaches
    # Where it stands (WGS 84): CAP alerts' circles and polygons reach it. Both or neither.
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _both(self) -> EndpointEntry:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give latitude and longitude together")
        return self


class GroupEntry(_Strict):
    name: Name
    channel: str
    units: list[str] = []
    endpoints: list[str] = []
    description: str = ""


class TargetSpec(_Strict):
    endpoints: list[str] = []
    groups: list[Name] = []
    units: list[str] = []


class SessionEntry(_Strict):
    """A broadcast session (buổi phát) of some units, of a group's units, or of every unit of
    a kind (phường, xã, đặc khu): one of `units`, `group`, `unit_kind`."""

    name: Name
    units: list[str] = []
    group: Name | None = None
    unit_kind: str | None = None
    weekdays: str | list[str | StrictInt] = "T2-T7"
    start: Annotated[time, Field(strict=True)] | str
    length: str | StrictInt


class SessionExceptionEntry(_Strict):
    """A day a session is cancelled (`session` omitted: every session, a holiday) or one
    is added (`session`, `start`, `length`), for some units, a group, a kind, or everywhere."""

    date: Annotated[date, Field(strict=True)]
    action: Literal["cancel", "add"] = "cancel"
    session: OptionalName = ""
    units: list[str] = []
    group: Name | None = None
    unit_kind: str | None = None
    start: Annotated[time, Field(strict=True)] | str | None = None
    length: str | StrictInt | None = None
    note: str = ""


class QueueEntry(_Strict):
    """Queue the item into the next sessions instead of a clock time (schedules.session_queue)."""

    per_week: int = Field(1, ge=1, le=100)
    sessions: list[Name] = []  # only sessions of these names
    when_full: Literal["next", "refuse"] = "next"
    # The item's length when its content has no audio to tell it.
    length: str | StrictInt | None = None


class ScheduleEntry(_Strict):
    name: Name
    # One content item, or a rotation: a pool of them, each occurrence picking per endpoint
    # (schedules.rotation); `content` is then the pool's first item.
    content: Name | None = None
    rotation: list[Name] = []
    policy: Literal["least-played", "in-order", "weighted"] | None = None
    weights: dict[Name, Annotated[float, Field(gt=0, le=1000)]] = {}
    channel: str
    targets: TargetSpec
    # Into the sessions (then `start` and `until` are its date range), or at clock times.
    queue: QueueEntry | None = None
    # TOML has its own times and dates: a number or a boolean is never read as one.
    start: Annotated[datetime, Field(strict=True)] | Annotated[date, Field(strict=True)]
    rrule: str | None = None
    until: Annotated[datetime, Field(strict=True)] | Annotated[date, Field(strict=True)] | None = (
        None
    )
    exdates: list[Annotated[datetime, Field(strict=True)]] = []
    priority: Literal["normal", "priority", "emergency"] = "normal"
    validity: str | StrictInt | None = None
    misfire_grace: str | StrictInt | None = None
    resend_unknown: bool = False
    # The channel's own options (SMS: khong_dau), checked by its plugin at import.
    options: dict[str, Any] = {}
    enabled: bool = True

    @field_validator("start")
    @classmethod
    def _a_date_starts_a_queue(cls, value: datetime | date, info: ValidationInfo) -> datetime:
        """A date alone starts a queued schedule's range (at 00:00); a clock schedule needs
        its time."""
        if isinstance(value, datetime):
            return value
        if info.data.get("queue") is None:
            raise PydanticCustomError(
                "start",
                "a date alone starts only a schedule with queue; give the time too "
                "(2021-05-03T06:00:00)",
            )
        return datetime.combine(value, time())

    @model_validator(mode="after")
    def _first_of_the_rotation(self) -> ScheduleEntry:
        """A rotation's content is its first item; the import checks the rest (naming the
        field: schedules.plan_import.schedules)."""
        if self.rotation and self.content is None:
            self.content = self.rotation[0]
        if self.rotation and self.policy is None:
            self.policy = "least-played"
        return self

    @property
    def items(self) -> list[str]:
        """The content keys it sends: its rotation, or its one content item."""
        return list(self.rotation) or [self.content or ""]


class PlanFile(_Strict):
    plan: PlanHeader
    targets: list[TargetEntry] = []
    content: list[ContentEntry] = []
    endpoints: list[EndpointEntry] = []
    groups: list[GroupEntry] = []
    sessions: list[SessionEntry] = []
    session_exceptions: list[SessionExceptionEntry] = []
    schedules: list[ScheduleEntry] = []


def read_plan_file(path: Path) -> tuple[PlanFile, str]:
    """Parse and structurally validate; errors carry the file, line and field."""
    text = read_text(path)  # UTF-8, or UTF-16 with its BOM; in NFC
    return parse_plan_text(text, str(path)), text


def parse_plan_text(text: str, source: str = "<plan>") -> PlanFile:
    """A plan file's text (an upload, say), parsed and structurally validated; errors name
    `source`, the line and the field."""
    text = nfc(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise InputError(
            "toml", source, f"malformed TOML: {exc}", source=source, line=line
        ) from exc
    data, errors = _normalised(data, (), source, text)
    named = {e.field for e in errors}
    try:
        plan_file = PlanFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if field_path(loc) in named:
                continue  # said already: its control characters
            errors.append(
                InputError(
                    field_path(loc),
                    err.get("input"),
                    err["msg"],
                    source=source,
                    line=locate(text, loc),
                )
            )
    if errors:
        raise InputErrors(errors)
    return plan_file


def _normalised(
    value: Any, loc: tuple[Any, ...], source: str, text: str
) -> tuple[Any, list[InputError]]:
    """`value` with every string in NFC, and an error for each string holding a control
    character other than a line break or tab (a NUL, say: no database keeps it)."""
    errors: list[InputError] = []
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            field = field_path(loc)
            errors.append(InputError(field, value, problem, source=source, line=locate(text, loc)))
        return nfc(value), errors
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], found = _normalised(item, (*loc, key), source, text)
            errors += found
        return out, errors
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            normal, found = _normalised(item, (*loc, index), source, text)
            items.append(normal)
            errors += found
        return items, errors
    return value, errors


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
