"""`[channels.boards]`: how long items show, when a board counts as offline, and the Huidu
controllers' keys, timings and brightness schedule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.settings import ChannelLimits, ScheduleLimits
from coso.config import DurationText, PositiveDuration
from coso.errors import InputError

CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
# An image a board item may carry: larger ones are refused at import.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = (3840, 2160)


class Brightness(BaseModel):
    """One period of the day at one brightness (the controller's own schedule)."""

    model_config = ConfigDict(extra="forbid")

    start: str  # "HH:MM", the board's local time
    end: str
    percent: int = Field(ge=1, le=100)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not CLOCK.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day like 18:30")
        return value


class HuiduSettings(BaseModel):
    """Huidu controllers (their device HTTP API, port 30080)."""

    model_config = ConfigDict(extra="forbid")

    # Where a controller is when its address names no host: the controller itself or
    # Huidu's gateway service, e.g. http://192.168.1.20:30080.
    gateway: str = ""
    sdk_key: str = ""
    sdk_secret: str = ""
    timeout: PositiveDuration = "5s"
    # How text reaches the LED: "image", drawn by coso with its Vietnamese font at the
    # board's resolution (most controllers' own fonts lack Vietnamese glyphs; a text too
    # long for one screen at a readable size in pages), or "text" for a controller that
    # renders Vietnamese itself.
    render: Literal["image", "text"] = "image"
    font_name: str = "DejaVu Sans"  # what a "text" program asks the controller for
    # How often coso reads what each controller shows (and sends again what changed).
    check_every: PositiveDuration = "30s"
    # Tries of one request before a send waits for its next attempt.
    tries: int = Field(2, ge=1, le=5)
    brightness: list[Brightness] = [
        Brightness(start="06:00", end="18:00", percent=100),
        Brightness(start="18:00", end="06:00", percent=40),
    ]

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", value):
            raise ValueError("gateway must be http://host:port (or empty)")
        return value.rstrip("/")


class BoardScheduleLimits(ScheduleLimits):
    min_interval: DurationText = "15m"
    max_per_day: int = Field(48, ge=1, le=1440)


class BoardSettings(ChannelLimits):
    schedules: BoardScheduleLimits = BoardScheduleLimits()
    rate_per_second: int = Field(2000, ge=1)
    # How long an item shows each time round the loop, unless its schedule says.
    seconds: int = Field(15, ge=1, le=3600)
    # Items go out this long before their slot (the timer fires their schedules early), so
    # that screens have them and put them on at the slot by coso's clock; an LED controller
    # is given its programme at the slot. "0s": at the slot. At most the timer's horizon.
    cue_ahead: DurationText = "10s"
    # How long an item with no validity stays on the boards after its slot.
    keep_for: PositiveDuration = "24h"
    # A screen not heard from this long is offline.
    offline_after: PositiveDuration = "45s"
    # Comment lines on the event stream so proxies keep it open, and boards' last seen.
    heartbeat: PositiveDuration = "15s"
    # Seconds between the web app's looks for new or ended items to push to screens.
    poll_seconds: float = Field(0.5, ge=0.05, le=10, allow_inf_nan=False)
    # A pairing code shown on a new screen is good this long.
    pairing_valid: PositiveDuration = "30m"
    huidu: HuiduSettings = HuiduSettings()
    # How every item's text is laid out on the boards (Jinja2: title, body, date, time), e.g.
    # "{{ title | upper }}\n{{ body }}\nUBND xã, {{ date }}". Empty: the item's text alone.
    template: str = ""
    # The boards' local time: `date` and `time` in the template, and the times of day of the
    # controllers' brightness schedule.
    zone: str = "Asia/Ho_Chi_Minh"

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        from channels.boards.template import check

        try:
            return check(value)
        except InputError as exc:
            raise ValueError(exc.reason) from exc

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone like Asia/Ho_Chi_Minh") from exc
        return value


class BoardOptions(BaseModel):
    """A board schedule's `options = {…}` in the plan file."""

    model_config = ConfigDict(extra="forbid")

    seconds: int | None = Field(None, ge=1, le=3600)  # on screen each time round
    image: str | None = None  # a PNG or JPEG file shown with (or instead of) the text
    scroll: bool = False  # an LED controller moves the text left continuously (a screen
    # scrolls any text too long to fit, whatever this says)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from channels.boards.images import check_image

        check_image(Path(value))
        return str(Path(value).resolve())
