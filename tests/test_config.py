"""config.example.toml works as-is and names every setting; bad settings name the field."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from channels.registry import settings_of
from coso.config import Settings, load_settings
from coso.errors import InputError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        elif name != "sites":
            keys.add(prefix + name)
    return keys


def _flatten(data: dict, prefix: str = "") -> set[str]:  # type: ignore[type-arg]
    keys = set()
    for name, value in data.items():
        if isinstance(value, dict) and value:  # an empty table is one setting
            keys |= _flatten(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_example_config_loads_as_the_defaults_and_names_every_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("COSO_")]:
        monkeypatch.delenv(name)
    from channels import registry

    loaded = load_settings(EXAMPLE)
    assert loaded.model_dump(exclude={"channels"}) == Settings().model_dump(exclude={"channels"})
    named = _keys(Settings) - {"channels"}
    for name in registry.names():  # each installed channel's section, as its model reads it
        model = registry.model(registry.plugins()[name].settings)
        assert registry.settings_of(loaded, name) == model(), name
        named |= _keys(model, f"channels.{name}.")
    assert _flatten(tomllib.loads(EXAMPLE.read_text())) == named


def test_bad_setting_names_the_field_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "coso.toml"
    bad.write_text('[timer]\ndefault_zone = "Asia/Saigon_"\n')
    with pytest.raises(InputError, match=r"coso.toml: timer.default_zone = 'Asia/Saigon_'"):
        load_settings(bad)
    bad.write_text("[server]\nport = 99999\n")
    with pytest.raises(InputError, match=r"server.port = 99999"):
        load_settings(bad)


def test_bad_duration_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "coso.toml"
    bad.write_text('[dispatcher]\nlease = "soon"\n')
    with pytest.raises(InputError, match=r"dispatcher.lease = 'soon': .*not like '90s'"):
        load_settings(bad)
    bad.write_text('[dispatcher.retry]\nmax_delay = "ten minutes"\n')
    with pytest.raises(InputError, match=r"dispatcher.retry.max_delay = 'ten minutes'"):
        load_settings(bad)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "coso.toml"
    config.write_text("[server]\nport = 9000\n[channels.web]\nrate_per_second = 5\n")
    monkeypatch.setenv("COSO_SERVER__PORT", "9100")
    settings = load_settings(config)
    assert (settings.server.port, settings_of(settings, "web").rate_per_second) == (9100, 5)
