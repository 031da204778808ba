from __future__ import annotations

from pathlib import Path

import pytest

from millnet.config import DEFAULT_CONFIG, load_settings
from millnet.errors import ConfigError


def test_default_config_file_is_valid_and_matches_builtin_defaults(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(DEFAULT_CONFIG)
    assert load_settings(path, environ={}) == load_settings(None, environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[mqtt]\nhost = "a"\nport = 1884\n')
    env = {"MILLNET_MQTT__HOST": "broker.plant", "MILLNET_API__PORT": "9"}
    s = load_settings(path, environ=env)
    assert s.mqtt.host == "broker.plant"
    assert s.mqtt.port == 1884
    assert s.api.port == 9


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[mqtt]\nport = 70000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == "mqtt.port"


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"MILLNET_MQTT__HOSTNAME": "x"})
    assert err.value.key == "mqtt.hostname"


def test_bad_enum_from_environment() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"MILLNET_NODE__ROLE": "regional"})
    assert err.value.key == "node.role"
    assert "regional" in str(err.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_password_is_never_shown() -> None:
    s = load_settings(None, environ={"MILLNET_MQTT__PASSWORD": "hunter2"})
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())


def test_paths_default_into_data_dir() -> None:
    s = load_settings(None, environ={"MILLNET_NODE__DATA_DIR": "/var/lib/millnet"})
    assert s.telemetry_path == Path("/var/lib/millnet/telemetry.duckdb")
    assert s.registry_url == "sqlite:////var/lib/millnet/registry.sqlite"
