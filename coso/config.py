"""Settings: defaults, then a TOML file, then COSO_* environment variables (COSO_DATABASE__URL)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from coso.clock import zone
from coso.durations import parse_duration
from coso.errors import InputError


class DatabaseSettings(BaseModel):
    url: str = "sqlite:///coso-data/coso.db"
    echo: bool = False


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8080"


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


# A duration as written in settings ("90s", "15m", "2h", "1h30m"), checked when read.
DurationText = Annotated[str, AfterValidator(_check_duration)]


class TimerSettings(BaseModel):
    horizon: DurationText = "15m"
    reconcile_every: DurationText = "5s"
    default_zone: str = "Asia/Ho_Chi_Minh"
    default_misfire_grace: DurationText = "15m"
    default_validity: DurationText = "2h"

    @field_validator("default_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class RetrySettings(BaseModel):
    first_delay: DurationText = "10s"
    max_delay: DurationText = "10m"
    max_attempts: int = Field(8, ge=1)


class DispatcherSettings(BaseModel):
    fanout_batch: int = Field(1000, ge=1)
    claim_batch: int = Field(100, ge=1)
    idle_poll: float = Field(0.5, gt=0)
    heartbeat: DurationText = "2s"
    lease: DurationText = "15s"
    retry: RetrySettings = RetrySettings()


class WordPressSite(BaseModel):
    name: str
    url: str
    username: str
    application_password: str
    status: str = "publish"


class ChannelLimits(BaseModel):
    """What every channel has: sends at once, and sends per second."""

    concurrency: int = Field(4, ge=1)
    rate_per_second: int = Field(50, ge=1)


class WebChannelSettings(ChannelLimits):
    timeout: float = Field(10.0, gt=0)
    sites: list[WordPressSite] = []


class BrokerSettings(BaseModel):
    """Where the MQTT broker is. An empty url starts one on loopback (`coso serve`)."""

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


class LoudspeakerSettings(ChannelLimits):
    concurrency: int = Field(1, ge=1)
    rate_per_second: int = Field(5000, ge=1)
    broker: BrokerSettings = BrokerSettings()
    topic_prefix: str = "coso/v1"
    # QoS 1 publishes awaiting the broker's PUBACK at once.
    max_inflight: int = Field(100, ge=1, le=65535)
    # Seconds to wait for the broker's PUBACK before a send counts as failed (retried).
    publish_timeout: float = Field(10.0, gt=0)
    # A command the player has not acknowledged (`received`) this long after it was sent
    # is published again; players ignore a delivery id they have seen.
    ack_timeout: DurationText = "30s"
    # How often each player's programme is re-sent (also on connect and on changes).
    sync_every: DurationText = "10m"
    # How far ahead a player's programme reaches, so it plays its slots through an outage.
    sync_horizon: DurationText = "48h"
    volume: int = Field(80, ge=0, le=100)
    # A broadcast that starts this long after its slot is marked late in the activity log.
    late_after: DurationText = "10s"
    client_id: str = "coso-dispatcher"
    # Apply player events in a process of their own (a second CPU; its MQTT client id is
    # client_id + "-events"); false: a thread of the dispatcher's process.
    events_process: bool = True


class MediaSettings(BaseModel):
    """Audio for loudspeakers: prepared once at upload, served to players over HTTP."""

    dir: str = "coso-data/media"
    target_lufs: float = Field(-16.0, ge=-40, le=-5)
    sample_rate: int = Field(44100, ge=8000, le=48000)
    channels: int = Field(1, ge=1, le=2)
    bitrate: str = "96k"
    # Key for each player's download token; empty: generated once and kept beside the media.
    token_secret: str = ""


class SmsSettings(ChannelLimits):
    """SMS through Twilio or a Twilio-compatible gateway. Off while account_sid is empty."""

    concurrency: int = Field(8, ge=1, le=256)
    # Per sender, counted in segments (a 3-part message takes 3).
    rate_per_second: int = Field(10, ge=1)
    account_sid: str = ""
    auth_token: str = ""
    # Empty: Twilio itself (https://api.twilio.com); else a Twilio-compatible gateway.
    base_url: str = ""
    sender: str = ""  # From: a brand name (at most 11 characters) or a number
    messaging_service_sid: str = ""  # instead of sender
    timeout: float = Field(10.0, gt=0)  # seconds per gateway request
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

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value and not value.startswith("+") and len(value) > 11:
            raise ValueError(f"brand name {value!r} is longer than 11 characters")
        return value


class ChannelSettings(BaseModel):
    web: WebChannelSettings = WebChannelSettings()
    loudspeaker: LoudspeakerSettings = LoudspeakerSettings()
    sms: SmsSettings = SmsSettings()

    def limits(self, channel: str) -> ChannelLimits:
        found = getattr(self, channel, None)
        return found if isinstance(found, ChannelLimits) else ChannelLimits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COSO_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    timer: TimerSettings = TimerSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    channels: ChannelSettings = ChannelSettings()
    media: MediaSettings = MediaSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, the file over defaults.
        return (env_settings, init_settings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from `path` (or $COSO_CONFIG, or ./coso.toml when present)."""
    chosen = path or os.environ.get("COSO_CONFIG")
    if chosen is None and Path("coso.toml").exists():
        chosen = "coso.toml"
    data: dict[str, Any] = {}
    source = str(chosen) if chosen else "defaults"
    if chosen:
        try:
            data = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError("config", str(chosen), "file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputError("config", str(chosen), f"not valid TOML: {exc}") from exc
    data = _merge(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(field, first.get("input"), first["msg"], source=source) from exc


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
