"""Settings: defaults, then a TOML file, then COSO_* environment variables (COSO_DATABASE__URL)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from coso.clock import zone
from coso.durations import parse_duration
from coso.errors import InputError


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    url: str = "sqlite:///coso-data/coso.db"
    echo: bool = False


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8080"


M = TypeVar("M", bound=BaseModel)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


# A duration as written in settings ("90s", "15m", "2h", "1h30m"), checked when read.
DurationText = Annotated[str, AfterValidator(_check_duration)]


class TimerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

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
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    first_delay: DurationText = "10s"
    max_delay: DurationText = "10m"
    max_attempts: int = Field(8, ge=1)


class DispatcherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    fanout_batch: int = Field(1000, ge=1)
    claim_batch: int = Field(100, ge=1)
    idle_poll: float = Field(0.5, gt=0)
    heartbeat: DurationText = "2s"
    lease: DurationText = "15s"
    retry: RetrySettings = RetrySettings()


class MediaSettings(BaseModel):
    """Audio for loudspeakers: prepared once at upload, served to players over HTTP."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    dir: str = "coso-data/media"
    target_lufs: float = Field(-16.0, ge=-40, le=-5)
    sample_rate: int = Field(44100, ge=8000, le=48000)
    channels: int = Field(1, ge=1, le=2)
    bitrate: str = "96k"
    # Key for each player's download token; empty: generated once and kept beside the media.
    token_secret: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COSO_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    timer: TimerSettings = TimerSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    # [channels.<name>]: each section checked by its channel's own settings model
    # (channels.registry.settings_of), so this core names no channel.
    channels: dict[str, dict[str, Any]] = {}
    media: MediaSettings = MediaSettings()
    _sections: dict[str, tuple[Any, Any]] = PrivateAttr(default_factory=dict)

    def channel_section(self, name: str, model: type[M]) -> M:
        """Section `channels.<name>` read by `model`, once: changes to it stay."""
        # A section given anew (settings.channels[name] = {...}) is read anew.
        raw = self.channels.get(name)
        read_from, found = self._sections.get(name, (None, None))
        if not isinstance(found, model) or read_from is not raw:
            found = model.model_validate(raw or {})
            self._sections[name] = (raw, found)
        return found

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy reads its channel sections anew (pydantic's copy would share them)."""
        copied = super().model_copy(update=update, deep=deep)
        copied._sections = {}
        return copied

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
