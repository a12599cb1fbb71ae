"""`[channels.sms]`: the gateway account, sender, quiet hours and the daily cap."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.settings import ChannelLimits, ScheduleLimits
from coso.config import DurationText, check_http_url


class SmsScheduleLimits(ScheduleLimits):
    """Text messages reach people's own phones: a few a day (see daily_cap), hours apart."""

    min_interval: DurationText = "4h"
    max_per_day: int = Field(3, ge=1, le=1440)


Rule = Literal["honour", "skip"]


class SmsEmergencyRules(BaseModel):
    """`[channels.sms.emergency]`: which rules an emergency SMS keeps ("honour") or passes
    ("skip"). A warning goes out at night and past the cap; a number that opted out is
    still left alone unless an administrator chooses otherwise for one emergency."""

    model_config = ConfigDict(extra="forbid")

    quiet_hours: Rule = "skip"
    daily_cap: Rule = "skip"
    opt_outs: Rule = "honour"


class SmsSettings(ChannelLimits):
    """SMS through Twilio or a Twilio-compatible gateway. Off while account_sid is empty."""

    schedules: SmsScheduleLimits = SmsScheduleLimits()
    emergency: SmsEmergencyRules = SmsEmergencyRules()

    concurrency: int = Field(8, ge=1, le=256)
    # Per sender, counted in segments (a 3-part message takes 3).
    rate_per_second: int = Field(10, ge=1)
    account_sid: str = ""
    auth_token: str = ""
    # Empty: Twilio itself (https://api.twilio.com); else a Twilio-compatible gateway.
    base_url: str = ""
    sender: str = ""  # From: a brand name (at most 11 characters) or a number
    messaging_service_sid: str = ""  # instead of sender
    timeout: float = Field(10.0, gt=0, le=600, allow_inf_nan=False)  # seconds per gateway request
    # Ask the gateway for status callbacks at <server.public_url>/sms/status.
    status_callbacks: bool = True
    # No non-emergency SMS between quiet_start and quiet_end, in the plan's zone.
    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    # Non-emergency messages per number per 24 hours (0: no cap).
    daily_cap: int = Field(3, ge=0)
    # Send every text without diacritics (GSM-7, 160 characters) unless a schedule says.
    khong_dau: bool = False

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _clock(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"{value!r} is not a time of day like 22:00")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_http_url(value) if value else value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value and not value.startswith("+") and len(value) > 11:
            raise ValueError(f"brand name {value!r} is longer than 11 characters")
        return value


class SmsOptions(BaseModel):
    """A schedule's SMS options in the plan file: `options = { khong_dau = true }`."""

    model_config = ConfigDict(extra="forbid")

    # Send without diacritics (GSM-7, 160 characters a segment); unset: channels.sms.khong_dau.
    khong_dau: bool | None = None
    # An emergency's choice for numbers that opted out; unset: channels.sms.emergency.opt_outs.
    opt_outs: Rule | None = None
