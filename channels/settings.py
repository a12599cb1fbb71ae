"""What every channel's settings section has: sends at once, and sends per second."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChannelLimits(BaseModel):
    """The base of each channel's `[channels.<name>]` section; a misspelt key is refused."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(4, ge=1)
    rate_per_second: int = Field(50, ge=1)
