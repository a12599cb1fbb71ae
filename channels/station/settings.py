"""`[channels.station]`: when an item counts as late, how confirmations are checked, and the
operators' morning list by SMS."""

from __future__ import annotations

from pydantic import Field, field_validator

from channels.settings import ChannelLimits, ScheduleLimits
from coso.clock import zone
from coso.config import DurationText, PositiveDuration


class StationScheduleLimits(ScheduleLimits):
    """A person plays each item: sessions at least half an hour apart, 8 a day."""

    min_interval: DurationText = "30m"
    max_per_day: int = Field(8, ge=1, le=1440)


class StationSettings(ChannelLimits):
    schedules: StationScheduleLimits = StationScheduleLimits()

    # An item still waiting this long after its slot is shown as late.
    late_after: PositiveDuration = "15m"
    # "Played at" may be this far ahead of coso's clock (a phone's clock a little fast) …
    clock_skew: DurationText = "5m"
    # … and this far before the slot (a session started early), no more.
    early_margin: DurationText = "30m"
    # A delivery nobody confirmed by the end of its validity is `unconfirmed`; the operator
    # may still confirm it (or say it could not be played) this long after. 0s: never.
    late_confirmation: DurationText = "24h"
    # Each operator gets the day's items with their codes by SMS at this time (the zone
    # below), through a channel that can text (SMS); empty: no list by SMS.
    digest_at: str = "05:00"
    # The zone of the operators' day; empty: timer.default_zone.
    zone: str = ""
    # Texts to operators (the list, replies to XN/KP) without diacritics: one GSM-7 segment
    # holds 160 characters instead of 70.
    khong_dau: bool = True
    # How often the upkeep runs: unconfirmed deliveries, old codes, the lists to send.
    upkeep_every: PositiveDuration = "30s"

    @field_validator("digest_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not value:
            return value
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"{value!r} is not a time of day like 05:00 (or empty)")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            zone(value)
        return value
