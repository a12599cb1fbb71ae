"""What every channel's settings section has: sends at once, sends per second, and how
often and how far ahead one schedule may fire on it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from coso.config import DurationText


class ScheduleLimits(BaseModel):
    """`[channels.<name>.schedules]`: bounds on one schedule of the channel, checked when a
    plan is imported. A channel declares its own defaults by subclassing this (so that
    overriding one key in the config keeps the channel's defaults for the others)."""

    model_config = ConfigDict(extra="forbid")

    # The shortest time between two firings of one schedule.
    min_interval: DurationText = "1h"
    # The most firings of one schedule in one day (in the plan's zone).
    max_per_day: int = Field(6, ge=1, le=1440)
    # How far ahead of the import its last firing may be.
    max_reach: DurationText = "731d"


class ChannelLimits(BaseModel):
    """The base of each channel's `[channels.<name>]` section; a misspelt key is refused."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(4, ge=1)
    rate_per_second: int = Field(50, ge=1)
    schedules: ScheduleLimits = ScheduleLimits()
