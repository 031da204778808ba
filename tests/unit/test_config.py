from __future__ import annotations

from pathlib import Path

import pytest

from millnet.config import DEFAULT_CONFIG, load_settings
from millnet.errors import ConfigError


def test_default_config_file_is_valid_and_matches_builtin_defaults(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(DEFAULT_CONFIG)
    assert load_settings(path, environ={}) == load_settings(None, environ={})


def test_the_commented_sources_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """``millnet init``'s [[sources]] examples, uncommented, load as written."""
    start = DEFAULT_CONFIG.index("# [[sources]]")
    example = "\n".join(line[2:] if line.startswith("# ") else line.removeprefix("#")
                        for line in DEFAULT_CONFIG[start:].splitlines())
    path = tmp_path / "node.toml"
    path.write_text(example)
    settings = load_settings(path, environ={})
    assert [(s.model_dump()["kind"], s.name) for s in settings.sources] == [
        ("opcua", "press-line"), ("modbus", "pump-gateway")]


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


def _identifiers(tmp_path: Path, **keys: str) -> dict[str, str]:
    secret = tmp_path / "admin.secret"
    secret.write_text("s3cret-admin-key\n")
    env = {"MILLNET_IDENTIFIERS__ENABLED": "true", "MILLNET_IDENTIFIERS__PREFIX": "88.100.5",
           "MILLNET_IDENTIFIERS__ADMIN_SECRET_FILE": str(secret)}
    return env | {f"MILLNET_{k}": v for k, v in keys.items()}


def test_identifier_service_from_the_environment(tmp_path: Path) -> None:
    from millnet.services import identifier_options

    env = _identifiers(tmp_path, IDENTIFIERS__UDP_PORT="3641", IDENTIFIERS__TCP_PORT="3642",
                       IDENTIFIERS__HTTP_PORT="0", IDENTIFIERS__PARENT="10.0.0.1:2641",
                       IDENTIFIERS__DELEGATES='["88.100.5.1=10.0.0.9:2641,10.0.0.10:2641"]',
                       IDENTIFIERS__RECURSIVE="true", IDENTIFIERS__WORKERS="2",
                       IDENTIFIERS__FOLLOW_CHANGES_EVERY="0.5", NODE__ROLE="secondary",
                       NODE__DATA_DIR=str(tmp_path / "d"), API__TRUSTED_PROXIES='["10.0.0.5"]')
    opts = identifier_options(load_settings(None, environ=env))
    assert (opts.prefix, opts.role, opts.udp_port, opts.tcp_port, opts.http_port) == (
        "88.100.5", "secondary", 3641, 3642, 0)
    assert opts.parent == "10.0.0.1:2641" and opts.recursive and opts.workers == 2
    assert opts.delegates == (("88.100.5.1", ("10.0.0.9:2641", "10.0.0.10:2641")),)
    assert opts.change_interval == 0.5 and opts.trusted_proxies == ("10.0.0.5/32",)
    assert opts.database_url == f"sqlite:///{tmp_path / 'd' / 'identifiers.sqlite'}"
    opts.check()


@pytest.mark.parametrize(("keys", "named"), [
    ({"IDENTIFIERS__HTTP_PORT": "8080"}, "identifiers.http_port"),  # api.port's default
    ({"IDENTIFIERS__TCP_PORT": "9000", "API__PORT": "9000"}, "identifiers.tcp_port"),
    ({"IDENTIFIERS__PREFIX": ""}, "identifiers.prefix"),
    ({"NODE__ROLE": "national", "IDENTIFIERS__PARENT": "10.0.0.1:2641"}, "identifiers.parent"),
    ({"IDENTIFIERS__UDP_PORT": "0"}, "identifiers.udp_port"),
])
def test_services_that_do_not_fit_together_are_named(tmp_path: Path, keys: dict[str, str],
                                                     named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ=_identifiers(tmp_path, **keys))
    assert err.value.key == named


def test_a_national_node_has_no_platform_but_serves_the_federation_on_the_api_port(
        tmp_path: Path) -> None:
    env = _identifiers(tmp_path, NODE__ROLE="national", IDENTIFIERS__HTTP_PORT="8081")
    settings = load_settings(None, environ=env)
    assert not settings.runs_platform
    assert load_settings(None, environ={}).runs_platform
    with pytest.raises(ConfigError) as err:  # its API port is taken by the federation
        load_settings(None, environ={**env, "MILLNET_IDENTIFIERS__HTTP_PORT": "8080"})
    assert err.value.key == "identifiers.http_port"


def test_a_missing_secret_file_is_named_before_anything_opens(tmp_path: Path) -> None:
    from millnet.services import build_services

    env = _identifiers(tmp_path, IDENTIFIERS__ADMIN_SECRET_FILE=str(tmp_path / "nope"),
                       NODE__DATA_DIR=str(tmp_path / "d"))
    with pytest.raises(ConfigError) as err:
        build_services(load_settings(None, environ=env))
    assert err.value.key == "identifiers.admin_secret_file"
    assert not (tmp_path / "d").exists()
    unset = {k: v for k, v in env.items() if "SECRET" not in k}
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ=unset)
    assert err.value.key == "identifiers.admin_secret_file"


def test_the_same_port_on_different_addresses_is_no_conflict(tmp_path: Path) -> None:
    env = _identifiers(tmp_path, IDENTIFIERS__HTTP_PORT="8080", IDENTIFIERS__HOST="10.0.0.7")
    assert load_settings(None, environ=env).identifiers.http_port == 8080
    env["MILLNET_API__HOST"] = "0.0.0.0"
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ=env)
    assert err.value.key == "identifiers.http_port"
