"""Settings: defaults, then a TOML file, then COSO_* environment variables (COSO_DATABASE__URL)."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from coso.clock import zone
from coso.durations import duration_within, parse_duration
from coso.errors import InputError
from coso.weektimes import clock_text, kind_word, parse_clock, parse_weekdays

ENV_PREFIX = "COSO_"
ENV_DELIMITER = "__"
SUPPORTED_DATABASES = ("sqlite", "postgresql", "postgres")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    url: str = "sqlite:///coso-data/coso.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        scheme, found, _ = value.partition("://")
        backend = scheme.split("+")[0].lower()
        if not found or backend not in SUPPORTED_DATABASES:
            raise ValueError(
                f"{scheme or value!r} databases are not supported; use sqlite:///path/coso.db"
                " or postgresql://user@host/name"
            )
        return value


def check_http_url(value: str) -> str:
    """An http(s) address with a host and no query or fragment (what others call back)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// address with a host")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(f"{value!r} must have no query (?) or fragment (#)")
    if any(c.isspace() or c == "\0" for c in value):
        raise ValueError(f"{value!r} contains a space or a control character")
    return value


# An http(s) address others reach coso at (server.public_url), checked when read.
HttpUrl = Annotated[str, AfterValidator(check_http_url)]


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: HttpUrl = "http://127.0.0.1:8080"


M = TypeVar("M", bound=BaseModel)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive_duration(value: str) -> str:
    duration_within(value)  # longer than 0s
    return value


# A duration as written in settings ("90s", "15m", "2h", "1h30m"), checked when read.
DurationText = Annotated[str, AfterValidator(_check_duration)]
# A duration where zero makes no sense (an interval, a timeout, a heartbeat).
PositiveDuration = Annotated[str, AfterValidator(_check_positive_duration)]


class TimerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    horizon: DurationText = "15m"
    reconcile_every: DurationText = "5s"
    default_zone: str = "Asia/Ho_Chi_Minh"
    default_misfire_grace: DurationText = "15m"
    default_validity: DurationText = "2h"

    # The timer holds a job per fire time of the horizon, in memory; it corrects itself
    # every reconcile_every. Zero means nothing for either, nor for a misfire grace.
    @field_validator("horizon")
    @classmethod
    def _horizon(cls, value: str) -> str:
        duration_within(value, timedelta(seconds=1), timedelta(days=7))
        return value

    @field_validator("reconcile_every")
    @classmethod
    def _reconcile_every(cls, value: str) -> str:
        duration_within(value, timedelta(seconds=1), timedelta(hours=1))
        return value

    @field_validator("default_misfire_grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        duration_within(value)
        return value

    @field_validator("default_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    first_delay: PositiveDuration = "10s"
    max_delay: PositiveDuration = "10m"
    max_attempts: int = Field(8, ge=1)


class DispatcherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    fanout_batch: int = Field(1000, ge=1)
    claim_batch: int = Field(100, ge=1)
    idle_poll: float = Field(0.5, gt=0, le=60, allow_inf_nan=False)
    heartbeat: PositiveDuration = "2s"
    lease: PositiveDuration = "15s"
    # How often a process that does not run the timer tries to take it over (and the one
    # that runs it checks that its lock still holds): the most a takeover waits for it.
    timer_retry: DurationText = "2s"
    # This dispatcher among several sharing one database (`coso serve --name`): each needs
    # its own. Empty: the only one.
    name: str = ""
    retry: RetrySettings = RetrySettings()

    @field_validator("timer_retry")
    @classmethod
    def _timer_retry(cls, value: str) -> str:
        duration_within(value, timedelta(seconds=1), timedelta(minutes=1))
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"dispatcher name {value!r}: letters, digits, '-', '_' and '.' only "
                "(at most 64; it becomes part of MQTT client ids)"
            )
        return value


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


def _check_abbreviations(table: dict[str, str]) -> dict[str, str]:
    for key, words in table.items():
        if not key.strip() or key != key.strip() or any(c.isspace() for c in key):
            raise ValueError(f"abbreviation {key!r}: one word, no spaces")
        if not words.strip():
            raise ValueError(f"abbreviation {key!r}: its reading is empty")
    return table


class SpeechSettings(BaseModel):
    """Speech for text-only items (content.speech): offline, espeak-ng's Vietnamese voice
    unless a local piper voice is named."""

    model_config = ConfigDict(extra="forbid")

    # espeak-ng's program and voice (vi: northern; vi-vn-x-central, vi-vn-x-south).
    espeak: str = "espeak-ng"
    voice: str = Field("vi", min_length=1, pattern=r"^[A-Za-z0-9_+-]+$")
    # Words per minute.
    rate: int = Field(140, ge=80, le=300)
    # A piper voice (.onnx with its .onnx.json beside it) used instead of espeak-ng.
    piper_model: str = ""
    # Abbreviations read in full, added to (and overriding) the built-in table.
    abbreviations: Annotated[dict[str, str], AfterValidator(_check_abbreviations)] = {}


class ConsoleSettings(BaseModel):
    """The console: sessions and logins."""

    model_config = ConfigDict(extra="forbid")

    # Key that signs session cookies (COSO_CONSOLE__SESSION_SECRET); empty: one is generated at
    # first start and kept in `secret_file` (mode 0600). A cookie signed with another key is
    # refused, so changing it logs everyone out.
    session_secret: str = ""
    secret_file: str = "coso-data/session-secret"
    session_max_age: PositiveDuration = "12h"
    # Failed logins allowed per login name and per address within `login_window`; past
    # that, further attempts wait until the window has passed (429 with Retry-After).
    login_attempts: int = Field(5, ge=1, le=1000)
    login_window: PositiveDuration = "15m"


class EmergencySettings(BaseModel):
    """`[emergency]`: one warning on every channel (`coso emergency send`). What each channel
    lets an emergency pass (SMS: quiet hours, the daily cap, opt-outs) is in that channel's
    own section (`[channels.sms.emergency]`)."""

    model_config = ConfigDict(extra="forbid")

    # How long an emergency lasts when it is sent without --until.
    validity: PositiveDuration = "6h"
    # Prefix of its reference: KC-0001/2026.
    prefix: str = Field("KC", min_length=1, max_length=10, pattern=r"^[A-ZĐ]+$")


class SessionSetting(BaseModel):
    """A default broadcast session (buổi phát) of every unit of one kind that has no
    sessions of its own, of its groups' or given for its kind (schedules.sessions)."""

    model_config = ConfigDict(extra="forbid")

    kind: str  # phường, xã, đặc khu (or ward, commune, special)
    name: str = Field(min_length=1)
    weekdays: str | list[str | int] = "T2-T7"
    start: str  # "05:00", in each plan's zone
    length: PositiveDuration

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return kind_word(value)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: str | list[str | int]) -> str | list[str | int]:
        parse_weekdays(value)
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        return clock_text(parse_clock(value))

    @field_validator("length")
    @classmethod
    def _length(cls, value: str) -> str:
        duration_within(value, timedelta(minutes=1), timedelta(hours=24))
        return value


CAP_SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")


class CapSenderSettings(BaseModel):
    """An agency allowed to send CAP alerts: its key for the HTTP endpoint, and the <sender>
    its documents carry."""

    model_config = ConfigDict(extra="forbid")

    # A short name for the agency, shown in the log of received alerts ("kttv").
    name: str = Field(min_length=1)
    # The value of <sender> in its documents (e.g. "canhbao@nchmf.gov.vn").
    sender: str = Field(min_length=1)
    # Sent as "Authorization: Bearer <token>"; at least 24 characters.
    token: str = Field(min_length=24)
    # Its alerts of these severities are declared at once (auto mode); others wait for a
    # person in the console.
    auto_severities: list[str] = []

    @field_validator("auto_severities")
    @classmethod
    def _severities(cls, value: list[str]) -> list[str]:
        for severity in value:
            if severity not in CAP_SEVERITIES:
                raise ValueError(f"{severity!r} is not a CAP severity; use {list(CAP_SEVERITIES)}")
        return value


class CapSettings(BaseModel):
    """CAP 1.2 alerts in (dispatcher.cap): who may send, where documents come from, how
    areas become units."""

    model_config = ConfigDict(extra="forbid")

    # [[cap.senders]]: agencies and their keys.
    senders: list[CapSenderSettings] = []
    # geocode valueNames whose values are Vietnamese administrative unit codes.
    geocode_names: list[str] = ["MA_DVHC"]
    # A folder watched for *.xml documents (done/ and refused/ are made inside); empty: none.
    folder: str = ""
    # Atom or RSS feeds of CAP documents, polled every `poll_every`.
    feeds: list[HttpUrl] = []
    poll_every: PositiveDuration = "1m"
    # The largest document accepted, in bytes.
    max_bytes: int = Field(512 * 1024, ge=1024, le=16 * 1024 * 1024)

    @field_validator("senders")
    @classmethod
    def _one_each(cls, value: list[CapSenderSettings]) -> list[CapSenderSettings]:
        for field in ("name", "sender", "token"):
            seen: set[str] = set()
            for entry in value:
                given = getattr(entry, field)
                if given in seen:
                    shown = given if field != "token" else "…"
                    raise ValueError(f"two senders have the same {field} {shown!r}")
                seen.add(given)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    timer: TimerSettings = TimerSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    # [channels.<name>]: each section checked by its channel's own settings model
    # (channels.registry.settings_of), so this core names no channel.
    channels: dict[str, dict[str, Any]] = {}
    media: MediaSettings = MediaSettings()
    speech: SpeechSettings = SpeechSettings()
    console: ConsoleSettings = ConsoleSettings()
    emergency: EmergencySettings = EmergencySettings()
    # [[sessions]]: default broadcast sessions per kind of unit.
    sessions: list[SessionSetting] = []
    cap: CapSettings = CapSettings()
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
    chosen = settings_file(path)
    data: dict[str, Any] = {}
    source = str(chosen) if chosen else "defaults"
    if chosen:
        data = _read_file(Path(chosen))
        check_sections(data, source)  # a bad value in the file, even where a variable wins
    data = _merge(data, overrides)
    variables = settings_variables(os.environ)
    check_variables(variables)
    try:
        return Settings(**data)
    except ValidationError as exc:
        loc, value, reason = _first_error(exc)
        field = ".".join(loc)
        variable = _variable_for(loc, variables)
        if variable is not None:
            field, source = variable, "environment"
        raise InputError(field, value, reason, source=source) from exc


def settings_file(path: str | Path | None = None) -> str | Path | None:
    """The settings file read: `path`, else $COSO_CONFIG, else ./coso.toml when present."""
    chosen = path or os.environ.get("COSO_CONFIG")
    if chosen is None and Path("coso.toml").exists():
        chosen = "coso.toml"
    return chosen


def located(error: InputError, path: str | Path | None = None) -> InputError:
    """`error` about a setting (from a later check, e.g. a channel's section), saying where
    the value came from: the variable that set it, else the settings file."""
    if error.source is not None:
        return error
    loc = tuple(error.field.split("."))
    variable = _variable_for(loc, settings_variables(os.environ))
    if variable is not None:
        return InputError(variable, error.value, error.reason, source="environment")
    chosen = settings_file(path)
    if chosen is None:
        return error
    return InputError(error.field, error.value, error.reason, source=str(chosen))


def check_sections(data: Mapping[str, Any], source: str) -> None:
    """Each section of a settings file, checked by its model alone (the environment aside)."""
    for key, value in data.items():
        field = Settings.model_fields.get(key)
        if field is None:
            known = ", ".join(sorted(Settings.model_fields))
            raise InputError(key, value, f"no such section; known: {known}", source=source)
        try:
            TypeAdapter(field.annotation).validate_python(value)
        except ValidationError as exc:
            loc, found, reason = _first_error(exc)
            raise InputError(".".join((key, *loc)), found, reason, source=source) from exc


def _first_error(exc: ValidationError) -> tuple[tuple[str, ...], Any, str]:
    """Where the first error is, the value found there, and why (pydantic's words)."""
    first = exc.errors()[0]
    reason = first["msg"].removeprefix("Value error, ")
    return tuple(str(p) for p in first["loc"]), first.get("input"), reason


def _read_file(path: Path) -> dict[str, Any]:
    """The TOML settings file; a clear error naming it when it cannot be read as such."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("config", str(path), "file not found") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            "config", str(path), f"not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise InputError("config", str(path), f"cannot be read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError("config", str(path), f"not valid TOML: {exc}") from exc


def settings_variables(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """COSO_* variables that set a setting (COSO_SERVER__PORT → ("server", "port")). Other
    COSO_* variables without the `__` of a nested key (COSO_CONFIG) are not settings."""
    found: dict[tuple[str, ...], str] = {}
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))
        if len(path) > 1 or path[0] in Settings.model_fields:
            found[path] = name
    return found


def check_variables(variables: Mapping[tuple[str, ...], str]) -> None:
    """Refuse a variable that names no section or key (COSO_DATABSE__URL), naming it.
    Under `channels`, the next part must be an installed channel; its keys are checked by
    the channel's own settings model."""
    for path, name in variables.items():
        model: type[BaseModel] | None = Settings
        for depth, part in enumerate(path):
            if model is None:
                break
            fields = model.model_fields
            if part not in fields:
                known = ", ".join(sorted(fields))
                where = ".".join(path[:depth]) or "the top level"
                raise InputError(
                    name,
                    "…",  # its value may be a password: not shown
                    f"{where} has no {part!r}; known: {known}",
                    source="environment",
                )
            if model is Settings and part == "channels":
                _check_channel_variable(name, path[depth + 1 :])
                break
            annotation = fields[part].annotation
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )


def _check_channel_variable(name: str, rest: tuple[str, ...]) -> None:
    from coso.plugins import channel_entry_points

    installed = sorted({ep.name for ep in channel_entry_points()})
    if not rest or rest[0] not in installed:
        raise InputError(
            name,
            "…",  # its value may be a password: not shown
            f"no channel called {rest[0] if rest else ''!r}; installed: {', '.join(installed)}",
            source="environment",
        )


def _variable_for(loc: tuple[str, ...], variables: Mapping[tuple[str, ...], str]) -> str | None:
    """The variable that set the value at `loc` (or a section holding it), if one did."""
    for length in range(len(loc), 0, -1):
        if loc[:length] in variables:
            return variables[loc[:length]]
    return None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
