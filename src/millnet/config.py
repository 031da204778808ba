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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    ValidationError,
)

from millnet.alarms.settings import AlarmsSection
from millnet.connectivity.edge.settings import EdgeSection
from millnet.errors import ConfigError
from millnet.federation.settings import FederationSection
from millnet.kpi.settings import KpiSection
from millnet.model.limits import RETENTION_DAYS_MAX
from millnet.notify.settings import NotifySection
from millnet.orders.settings import OrdersSection
from millnet.park.settings import ParkSection
from millnet.rules.settings import RulesSection
from millnet.security.settings import SecuritySettings
from millnet.sources import RESERVED_NAMES, AnySpec, error_path
from millnet.trace.settings import TraceSection

ENV_PREFIX = "MILLNET_"
EDGE_UPLINK = "edge-uplink"  # the name the uplink is listed under in GET /api/v1/sources


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Section):
    # edge: field adapters that forward upstream ([edge]), no telemetry store (docs/edge.md)
    role: Literal["enterprise", "secondary", "national", "edge"] = "enterprise"
    name: str = "millnet-node"
    data_dir: Path = Path("./millnet-data")
    # The platform (ingest, store, API); None: by role (not on a national node).
    platform: bool | None = None


class RegistrySection(_Section):
    # Empty means SQLite in data_dir; e.g. "postgresql+psycopg://user@host:5432/millnet"
    url: str = ""


class TelemetrySection(_Section):
    backend: Literal["duckdb"] = "duckdb"
    # Empty means <data_dir>/telemetry.duckdb and <data_dir>/archive
    path: str = ""
    archive_dir: str = ""
    retention_days: int = Field(default=30, ge=1, le=RETENTION_DAYS_MAX)
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
    # MQTT version of the node's clients. 3.1.1 by default: paho builds a Properties object
    # for every MQTT 5 PUBLISH, a fifth of the node's ingest CPU (docs/benchmarks.md); MQTT 5
    # adds a session expiry (an hour) and the Receive Maximum hint.
    protocol: Literal["3.1.1", "5"] = "3.1.1"


class ApiSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); none
    # by default: the client is the TCP peer.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()


class IdentifiersSection(_Section):
    """The identifier service (``millnet id serve`` is a node with only this section)."""

    enabled: bool = False
    prefix: str = ""
    host: str = "127.0.0.1"
    udp_port: int = Field(default=2641, ge=1, le=65535)
    tcp_port: int = Field(default=2641, ge=1, le=65535)
    http_port: int = Field(default=8000, ge=0, le=65535)
    admin_secret_file: Path | None = None
    # Empty: SQLite identifiers.sqlite in node.data_dir.
    database: str = ""
    # host:port (or host:udp/tcp) of the parent node; none on a national node.
    parent: str = ""
    delegates: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    delegates_via: tuple[str, ...] = ()
    recursive: bool = False
    follow_changes_every: float = Field(default=2.0, ge=0)
    workers: int = Field(default=1, ge=1, le=64)
    mirror_of: str = ""
    advertise: str = ""


class Settings(_Section):
    node: NodeSection = NodeSection()
    registry: RegistrySection = RegistrySection()
    telemetry: TelemetrySection = TelemetrySection()
    ingest: IngestSection = IngestSection()
    mqtt: MqttSection = MqttSection()
    api: ApiSection = ApiSection()
    identifiers: IdentifiersSection = IdentifiersSection()
    # Store-and-forward to a central node; read on an edge node only (docs/edge.md).
    edge: EdgeSection = EdgeSection()
    # Field sources, one ``[[sources]]`` table each, discriminated on ``kind`` (docs/sources.md).
    sources: tuple[AnySpec, ...] = ()
    # Rules, alarms, notifications and KPIs (issue 12: docs/rules.md, alarms.md,
    # notifications.md, kpi.md).
    rules: RulesSection = RulesSection()
    alarms: AlarmsSection = AlarmsSection()
    notify: NotifySection = NotifySection()
    kpi: KpiSection = KpiSection()
    # The monitoring federation and the node's own security monitoring (issue 13:
    # docs/federation.md, docs/security-monitoring.md).
    federation: FederationSection = FederationSection()
    security: SecuritySettings = SecuritySettings()
    # The industrial park: a secondary keeps its members' summaries (issue 15: docs/park.md).
    park: ParkSection = ParkSection()
    # Orders of configurable products: product files, tracking (issue 15:
    # docs/customization.md).
    orders: OrdersSection = OrdersSection()
    # EPCIS capture and query, the trace across nodes, emitted events (issue 15:
    # docs/traceability.md).
    trace: TraceSection = TraceSection()
    _file: Path | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # The same settings, wherever they were read from.
        return isinstance(other, Settings) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @property
    def config_path(self) -> Path | None:
        """The file the settings were read from (None: defaults and environment only)."""
        return self._file

    @property
    def config_file(self) -> str:
        """Where the settings came from (named when the API refuses to remove a source)."""
        return str(self._file) if self._file is not None else "the node's configuration"

    @property
    def is_edge(self) -> bool:
        return self.node.role == "edge"

    @property
    def runs_mqtt_sources(self) -> bool:
        """The MQTT JSON and Sparkplug host sources: on by default except on an edge node,
        which is a Sparkplug *edge* upstream and a host only when ``mqtt.enabled`` says so."""
        if self.is_edge and "enabled" not in self.mqtt.model_fields_set:
            return False
        return self.mqtt.enabled

    @property
    def runs_platform(self) -> bool:
        platform = self.node.platform
        return self.node.role != "national" if platform is None else platform

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
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = error_path(err)
        got = "" if err["loc"][:1] == ("sources",) else f" (got {err.get('input')!r})"
        raise ConfigError(key, f"{err['msg']}{got}") from exc
    _check_services(settings)
    _check_edge(settings)
    _check_sources(settings)
    _check_park(settings)
    settings._file = path
    return settings


def _check_edge(settings: Settings) -> None:
    """An edge node says where it forwards to, and runs no identifier service."""
    if not settings.is_edge:
        return
    if "host" not in settings.edge.model_fields_set:
        raise ConfigError("edge.host", "an edge node forwards to an upstream MQTT broker: "
                                       "set its address (MILLNET_EDGE__HOST)")
    if settings.identifiers.enabled:
        raise ConfigError("identifiers.enabled", "an edge node runs no identifier service")
    if settings.node.platform is False:
        raise ConfigError("node.platform", "an edge node is its platform (adapters, buffer, "
                                           "uplink); it cannot be off")


def _check_park(settings: Settings) -> None:
    """A park is a secondary node; its members are enterprises (docs/park.md)."""
    role = settings.node.role
    if settings.park.enabled and role != "secondary":
        raise ConfigError("park.enabled", f"a park is a secondary node, not a {role} node")
    if settings.park.report_every_s and role != "enterprise":
        raise ConfigError("park.report_every_s", f"park members are enterprises, not {role} "
                                                 "nodes")


def _check_sources(settings: Settings) -> None:
    """Source names are unique, and not those of the node's MQTT and HTTP sources (nor the
    edge uplink's, on an edge node)."""
    seen: dict[str, int] = {}
    reserved = RESERVED_NAMES | ({EDGE_UPLINK} if settings.is_edge else set())
    for i, spec in enumerate(settings.sources):
        if spec.name in reserved:
            raise ConfigError(f"sources[{i}].name", f"{spec.name!r} is the name of a source the "
                              "node runs itself; choose another")
        if spec.name in seen:
            raise ConfigError(f"sources[{i}].name", f"{spec.name!r} is also sources"
                              f"[{seen[spec.name]}].name")
        seen[spec.name] = i


def _check_services(settings: Settings) -> None:
    """What single keys cannot say: the services of one node must fit together."""
    ids = settings.identifiers
    if not ids.enabled:
        return
    if not ids.prefix:
        raise ConfigError("identifiers.prefix", "the prefix this node serves, e.g. 88.100.5")
    if ids.admin_secret_file is None:
        raise ConfigError("identifiers.admin_secret_file", "the file holding the prefix "
                                                           "admin's secret is required")
    if settings.node.role == "national" and ids.parent:
        raise ConfigError("identifiers.parent", "a national node is the root: it has no parent")
    # TCP listeners of one process need distinct ports (UDP has only one listener), unless
    # they listen on different addresses.
    listeners = [("identifiers.tcp_port", ids.host, ids.tcp_port),
                 ("identifiers.http_port", ids.host, ids.http_port)]
    # The API: the platform's, or a national node's federation API.
    listeners.insert(0, ("api.port", settings.api.host, settings.api.port))
    for i, (key, host, port) in enumerate(listeners):
        for other, other_host, other_port in listeners[:i]:
            if port and port == other_port and _overlap(host, other_host):
                raise ConfigError(key, f"port {port} is also {other}")


def _overlap(a: str, b: str) -> bool:
    wildcard = ("", "0.0.0.0", "::")  # noqa: S104 - addresses compared, not bound
    return a == b or a in wildcard or b in wildcard


DEFAULT_CONFIG = """\
# millnet node configuration.
# Every key can be overridden by an environment variable: MILLNET_<SECTION>__<KEY>,
# e.g. MILLNET_MQTT__HOST=broker.plant.local, MILLNET_API__PORT=9000.

[node]
# enterprise | secondary | national | edge (an edge node forwards to a central one: [edge])
role = "enterprise"
name = "millnet-node"
# Where the embedded stores live (SQLite registry and identifiers, DuckDB telemetry, Parquet).
data_dir = "./millnet-data"
# Run the platform (ingest, store, API)? Unset: yes, except on a national node (which serves
# only the federation and its views on the API port).
# platform = true

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

[identifiers]
# The identifier service (Handle protocol over UDP/TCP, Handle REST API over HTTP) in this
# node's process; node.role is its role. `millnet id serve` runs only this service.
enabled = false
prefix = ""                    # the prefix this node serves, e.g. "88.100.5"
# admin_secret_file = "/etc/millnet/prefix-admin.secret"   # required when enabled
host = "127.0.0.1"
udp_port = 2641
tcp_port = 2641
http_port = 8000
# Empty: SQLite in data_dir. PostgreSQL: "postgresql+psycopg://ids@db.plant.local/ids"
database = ""
# The parent node (host:port or host:udp/tcp): unknown prefixes are referred there.
parent = ""
# Child prefixes delegated to replicas: ["88.100.5=10.0.0.7:2641,10.0.0.8:2641"]
delegates = []
# Service handles kept here, ["88.100/SERV.A=10.0.0.7:2641"], and prefixes delegated
# through them, ["88.100.7=88.100/SERV.A"].
services = []
delegates_via = []
# Follow referrals for clients that ask (REC), with a cache that polls the change feeds
# of the nodes it caches from every follow_changes_every seconds (0: TTLs only).
recursive = false
follow_changes_every = 2.0
# Processes answering UDP and HTTP on the same ports (SO_REUSEPORT).
workers = 1
# The primary's HTTP API (http://host:port): replicate it and refuse writes.
mirror_of = ""
# The IP address clients reach this node at, written into its HS_SITE (default: host).
advertise = ""
# The identifier HTTP API trusts the proxies of api.trusted_proxies.

# Edge role (node.role = "edge", docs/edge.md): the field sources' samples go to a durable
# buffer in data_dir and from there, as a Sparkplug B edge node, to a central node's broker;
# no telemetry store, no identifier service; [mqtt] sources off unless mqtt.enabled is set.
# [edge]
# host = "central.plant.local"   # the upstream broker (required on an edge node)
# port = 1883
# username = "edge-1"
# password = "..."               # better: MILLNET_EDGE__PASSWORD in the environment
# tls = false
# ca_file = "/etc/millnet/central-ca.pem"
# keepalive = 30
# group_id = "millnet"           # upstream: the site
# edge_node_id = "edge"          # upstream: "<area>.<line>"
# primary_host_id = "millnet"    # publish while this host is online; "" always
# client_id = ""                 # default millnet-edge-<group_id>-<edge_node_id>
# buffer_dir = "/var/lib/millnet/edge"   # default <data_dir>/edge
# max_buffer_bytes = 1073741824
# when_full = "refuse_new"       # or "drop_oldest" (counted loss)
# max_inflight = 256
# metrics_per_message = 2000

# The monitoring federation (docs/federation.md): this node reports to its parent (enterprise ->
# secondary -> national) and takes advisories and orders from it. Enroll once with a token the
# parent's operator issued: `millnet federation enroll --parent http://... --token ...`.
[federation]
# parent_url = "http://province.example.cn:8080"   # empty on a national node
heartbeat_s = 10

# Security events of this node (docs/security-monitoring.md): failed logins, unknown devices,
# protocol violations, message-rate anomalies; reported upward through the federation.
[security]
enabled = true

# The industrial park (docs/park.md): a secondary with `enabled` keeps its member enterprises'
# summaries (`millnet park`); a member sends its per-shift parts, energy and OEE upward.
# Shares with partner enterprises need no configuration (docs/collaboration.md).
# [park]
# enabled = false                # on a secondary: it is a park
# report_every_s = 300           # on a member enterprise (0: it sends no park summaries)
# energy_point = "Power/Active"  # kW, integrated; or a kWh meter with energy_counter = true

# Field sources (docs/sources.md, docs/opcua.md, docs/modbus.md): one [[sources]] table each,
# `kind` = opcua | modbus. Sources can also be added through the API (POST /api/v1/sources).
# [[sources]]
# kind = "opcua"
# name = "press-line"
# endpoint = "opc.tcp://10.0.0.20:4840"
# nodes = [
#   { node_id = "ns=2;s=Press1.Force", device = "plant1/press/line1/press-1", point = "force" },
# ]
#
# [[sources]]
# kind = "modbus"
# name = "pump-gateway"
# host = "10.0.0.31"
# poll_groups = [{ name = "default", interval_ms = 1000 }]
# # or register_map_csv = "/etc/millnet/pump-gateway.csv", with these keys as columns
# [[sources.registers]]
# device = "plant1/utilities/water/pump-1"
# point = "speed"
# table = "holding"
# address = 0
# type = "float32"
# unit = "rpm"

"""
