"""`[channels.web]`: coso's bulletin is always on; WordPress sites are added here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from channels.settings import ChannelLimits


class WordPressSite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    username: str
    application_password: str
    status: str = "publish"


class WebChannelSettings(ChannelLimits):
    timeout: float = Field(10.0, gt=0)
    sites: list[WordPressSite] = Field(default_factory=list)
