"""Node configuration: one TOML file plus ``MILLNET_...`` environment overrides.

An override names the dotted key with ``__`` between levels, for example
``MILLNET_MQTT__HOST=broker.plant.local`` or ``MILLNET_API__PORT=9000``. Values are parsed as
TOML scalars where they parse (numbers, booleans), else taken as strings. Validation happens once,
at start; a bad value raises :class:`~millnet.errors.ConfigError` naming the dotted key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, ValidationError

from millnet.errors import ConfigError

ENV_PREFIX = "MILLNET_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Section):
    role: Literal["enterprise", "secondary", "national"] = "enterprise"
    name: str = "millnet-node"
    data_dir: Path = Path("./millnet-data")


class RegistrySection(_Section):
    # Empty means SQLite in data_dir; e.g. "postgresql+psycopg://user@host:5432/millnet"
    url: str = ""


class TelemetrySection(_Section):
    backend: Literal["duckdb"] = "duckdb"
    # Empty means <data_dir>/telemetry.duckdb and <data_dir>/archive
    path: str = ""
    archive_dir: str = ""
    retention_days: int = Field(default=30, ge=1)
    memory_limit: str = "1GB"


class IngestSection(_Section):
    batch_max_samples: int = Field(default=50_000, ge=1)
    batch_max_delay_ms: int = Field(default=200, ge=1)
    queue_max_samples: int = Field(default=1_000_000, ge=1_000)
    max_payload_bytes: int = Field(default=1_048_576, ge=64)
    # Per tenant: devices and points that sources may create on first sight (0: none).
    max_devices_per_tenant: int = Field(default=10_000, ge=0)
    max_points_per_tenant: int = Field(default=200_000, ge=0)


class MqttSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "millnet-host"
    keepalive: int = Field(default=30, ge=5)
    json_topic_root: str = "millnet"
    sparkplug: bool = True
    sparkplug_host_id: str = "millnet"
    # Which tenant data arriving on this broker belongs to.
    tenant: str = "default"
    qos: Literal[0, 1] = 1


class ApiSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); none
    # by default: the client is the TCP peer.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()


class Settings(_Section):
    node: NodeSection = NodeSection()
    registry: RegistrySection = RegistrySection()
    telemetry: TelemetrySection = TelemetrySection()
    ingest: IngestSection = IngestSection()
    mqtt: MqttSection = MqttSection()
    api: ApiSection = ApiSection()

    @property
    def registry_url(self) -> str:
        return self.registry.url or f"sqlite:///{self.node.data_dir / 'registry.sqlite'}"

    @property
    def telemetry_path(self) -> Path:
        return Path(self.telemetry.path) if self.telemetry.path else (
            self.node.data_dir / "telemetry.duckdb"
        )

    @property
    def archive_dir(self) -> Path:
        return Path(self.telemetry.archive_dir) if self.telemetry.archive_dir else (
            self.node.data_dir / "archive"
        )


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_scalar(raw)
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (if given), apply environment and explicit overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(str(path), "configuration file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(key, f"{err['msg']} (got {err.get('input')!r})") from exc


DEFAULT_CONFIG = """\
# millnet node configuration.
# Every key can be overridden by an environment variable: MILLNET_<SECTION>__<KEY>,
# e.g. MILLNET_MQTT__HOST=broker.plant.local, MILLNET_API__PORT=9000.

[node]
# enterprise | secondary | national
role = "enterprise"
name = "millnet-node"
# Where the embedded stores live (SQLite registry, DuckDB telemetry, Parquet archive).
data_dir = "./millnet-data"

[registry]
# Empty: SQLite in data_dir. PostgreSQL: "postgresql+psycopg://millnet@db.plant.local:5432/millnet"
url = ""

[telemetry]
backend = "duckdb"
# Empty: <data_dir>/telemetry.duckdb and <data_dir>/archive
path = ""
archive_dir = ""
# Days of telemetry kept in the hot store; older days move to Parquet (zstd), still queryable.
retention_days = 30
memory_limit = "1GB"

[ingest]
# A batch is written when it holds this many samples or is this old, whichever comes first.
batch_max_samples = 50000
batch_max_delay_ms = 200
# Samples waiting for the store; beyond this the MQTT reader stops reading (backpressure).
queue_max_samples = 1000000
# Larger MQTT payloads are rejected (counted as reason "oversized").
max_payload_bytes = 1048576
# Devices and points that MQTT sources may create on first sight, per tenant; beyond these,
# new devices and points are refused and counted (reason "quota"). Those created through the
# API count too but are not limited.
max_devices_per_tenant = 10000
max_points_per_tenant = 200000

[mqtt]
enabled = true
host = "127.0.0.1"
port = 1883
# username = "millnet"
# password = "..."            # better: MILLNET_MQTT__PASSWORD in the environment
client_id = "millnet-host"
keepalive = 30
# Plain JSON telemetry: <json_topic_root>/<site>/<area>/<line>/<device>
json_topic_root = "millnet"
# Act as a Sparkplug B 3.0 Primary Host Application under this host id.
sparkplug = true
sparkplug_host_id = "millnet"
# Tenant the data on this broker belongs to.
tenant = "default"
qos = 1

[api]
host = "127.0.0.1"
port = 8080
# Reverse proxies in front of the API whose X-Forwarded-For header names the client, e.g.
# ["10.0.0.5", "10.1.0.0/24"]. Empty: the client is whoever connects (headers ignored).
trusted_proxies = []
"""
