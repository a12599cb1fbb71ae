"""`[channels.web]`: coso's bulletin is always on; WordPress sites are added here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.settings import ChannelLimits, ScheduleLimits
from coso.config import DurationText, check_http_url


class WordPressSite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    username: str
    application_password: str
    status: str = "publish"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)


class WebScheduleLimits(ScheduleLimits):
    """Posts to a bulletin or a site: a few a day, an hour apart."""

    min_interval: DurationText = "1h"
    max_per_day: int = Field(6, ge=1, le=1440)


class WebChannelSettings(ChannelLimits):
    schedules: WebScheduleLimits = WebScheduleLimits()
    timeout: float = Field(10.0, gt=0, le=600, allow_inf_nan=False)
    sites: list[WordPressSite] = Field(default_factory=list)
