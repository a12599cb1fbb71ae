"""`[channels.loudspeaker]`: the MQTT broker, topics, timings and the events process."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.settings import ChannelLimits, ScheduleLimits
from coso.config import DurationText, PositiveDuration


class BrokerSettings(BaseModel):
    """Where the MQTT broker is. An empty url starts one on loopback (`coso serve`)."""

    model_config = ConfigDict(extra="forbid")

    url: str = ""  # mqtt://host:1883 or mqtts://host:8883; empty: start one on loopback
    username: str = ""
    password: str = ""
    ca_file: str = ""  # TLS: the CA that signed the broker's certificate
    cert_file: str = ""  # TLS client certificate, when the broker asks for one
    key_file: str = ""
    keepalive: int = Field(30, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("broker url must start with mqtt:// or mqtts:// (or be empty)")
        return value


class LoudspeakerScheduleLimits(ScheduleLimits):
    """Broadcasts: every 15 minutes at most (a typhoon warning repeated), 24 a day."""

    min_interval: DurationText = "15m"
    max_per_day: int = Field(24, ge=1, le=1440)


class LoudspeakerSettings(ChannelLimits):
    schedules: LoudspeakerScheduleLimits = LoudspeakerScheduleLimits()
    concurrency: int = Field(1, ge=1)
    rate_per_second: int = Field(5000, ge=1)
    broker: BrokerSettings = BrokerSettings()
    topic_prefix: str = "coso/v1"
    # QoS 1 publishes awaiting the broker's PUBACK at once.
    max_inflight: int = Field(100, ge=1, le=65535)
    # Seconds to wait for the broker's PUBACK before a send counts as failed (retried).
    publish_timeout: float = Field(10.0, gt=0, le=600, allow_inf_nan=False)
    # A command the player has not acknowledged (`received`) this long after it was sent
    # is published again; players ignore a delivery id they have seen.
    ack_timeout: PositiveDuration = "30s"
    # How often each player's programme is re-sent (also on connect and on changes).
    sync_every: PositiveDuration = "10m"
    # How far ahead a player's programme reaches, so it plays its slots through an outage.
    sync_horizon: PositiveDuration = "48h"
    volume: int = Field(80, ge=0, le=100)
    # Play commands go out this long before their slot, and players start them at it by
    # their own clock (as they play their programme): on air at the slot, whatever it takes
    # to reach ten thousand players. "0s": at the slot. Emergencies go at their slot.
    cue_ahead: DurationText = "10s"
    # A broadcast that starts this long after its slot is marked late in the activity log.
    late_after: DurationText = "10s"
    client_id: str = "coso-dispatcher"
    # A message from a player larger than this many bytes is refused unread (an as-run
    # upload of a week offline is a few tens of KiB).
    max_payload: int = Field(256 * 1024, ge=4096, le=16 * 1024 * 1024)
    # How far a player's clock may be off: a time it reports before its command's
    # not_before, or after coso received the report, by more than this is moved to that
    # bound (and logged).
    clock_skew: DurationText = "2m"
    # Apply player events in a process of their own (a second CPU; its MQTT client id is
    # client_id + "-events"); false: a thread of the dispatcher's process; "auto": a process
    # from 500 loudspeaker endpoints on, on a machine of four CPUs or more (below either, a
    # second process costs more memory than it gains time).
    events_process: bool | Literal["auto"] = "auto"
    # Several dispatchers (each with its dispatcher.name): player events reach one of them,
    # through an MQTT 5 shared subscription ($share/<share_group>/...); empty: every
    # dispatcher gets every event. Their events sessions outlive a disconnection this long
    # (a restart within it loses nothing; a dispatcher gone for longer no longer takes its
    # share). Status messages (online/offline) reach every dispatcher.
    share_group: str = "coso"
    shared_session_expiry: PositiveDuration = "1m"

    @field_validator("share_group")
    @classmethod
    def _share_group(cls, value: str) -> str:
        if any(c in value for c in "/+#\0") or value != value.strip():
            raise ValueError(f"share group {value!r}: no '/', '+', '#', spaces at the ends or NUL")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        # Every topic coso publishes or subscribes to starts with it: a wildcard would
        # subscribe to (or publish on) other players' topics, an empty level to none.
        if not value.strip():
            raise ValueError("topic prefix is empty")
        if "+" in value or "#" in value:
            raise ValueError(f"topic prefix {value!r} contains an MQTT wildcard (+ or #)")
        if "\0" in value:
            raise ValueError(f"topic prefix {value!r} contains a NUL character")
        if value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError(f"topic prefix {value!r} has an empty level (a / at an end or //)")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("client id is empty: the broker tells players apart by it")
        if "\0" in value:
            raise ValueError(f"client id {value!r} contains a NUL character")
        return value
