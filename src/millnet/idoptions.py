"""The identifier service's options (:class:`IdServerOptions`), built by :mod:`millnet.node`
from the ``[identifiers]`` section, and their checks: every error names the setting's key."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from millnet.errors import ConfigError
from millnet.identifiers.core.delegation import prefix_key
from millnet.identifiers.hierarchy.cache import MAX_ENTRIES, NEGATIVE_TTL
from millnet.identifiers.hierarchy.freshness import INTERVAL as CHANGE_INTERVAL
from millnet.identifiers.hierarchy.hierarchy import ROLES, Endpoint
from millnet.identifiers.hierarchy.resolver import MAX_RECURSION
from millnet.serving import trusted_proxies

DATABASE = "identifiers.sqlite"
MAX_WORKERS = 64
SECRET_KEY = "identifiers.admin_secret_file"  # noqa: S105 - a setting's name


@dataclass(frozen=True)
class IdServerOptions:
    prefix: str
    data_dir: Path
    admin_secret_file: Path
    host: str = "127.0.0.1"
    udp_port: int = 2641
    tcp_port: int = 2641
    http_port: int = 8000
    role: str = "enterprise"
    parent: str | None = None
    #: (child prefix, "host:port" of each replica serving it)
    delegates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    recursive: bool = False
    cache_size: int = MAX_ENTRIES
    negative_ttl: float = NEGATIVE_TTL
    max_recursion: int = MAX_RECURSION
    #: seconds between polls of the change feeds of the nodes cached from (0: TTLs only)
    change_interval: float = CHANGE_INTERVAL
    #: the primary's HTTP API (``http://host:port``): this node is its mirror
    mirror_of: str | None = None
    #: processes answering UDP and HTTP (SO_REUSEPORT): this one and ``workers - 1`` more
    workers: int = 1
    #: service handles this node keeps: (handle, "host:port" of each replica)
    services: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: child prefixes delegated through a service handle (HS_SERV): (child, service handle)
    delegates_via: tuple[tuple[str, str], ...] = ()
    #: replication log rows kept (older ones are trimmed every ``log_trim_interval`` s; a
    #: mirror that falls further behind takes a full dump)
    log_keep: int = 1_000_000
    log_trim_interval: float = 60.0
    #: the identifier database (SQLAlchemy URL); None: SQLite ``identifiers.sqlite`` in
    #: ``data_dir``. The UDP and REST fast paths read SQLite files only; on PostgreSQL every
    #: resolution takes the general path.
    database: str | None = None
    #: the address clients reach this node at, for its HS_SITE (default: ``host``; needed
    #: when ``host`` is a wildcard such as 0.0.0.0)
    advertise: str | None = None
    #: reverse proxies (addresses or networks) whose ``X-Forwarded-For`` names the HTTP
    #: client; none: the client is the TCP peer, whatever the headers say
    trusted_proxies: tuple[str, ...] = ()

    @property
    def advertised_host(self) -> str:
        return self.advertise or self.host

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / DATABASE}"

    def check(self) -> None:
        try:
            address = ipaddress.ip_address(self.advertised_host)
        except ValueError:
            field = "identifiers.advertise" if self.advertise else "identifiers.host"
            raise ConfigError(field, f"{self.advertised_host!r} is not an IP address (HS_SITE "
                                     "carries addresses, not names)") from None
        if address.is_unspecified:
            raise ConfigError("identifiers.advertise", f"listening on {self.host}: give the "
                                                       "address clients reach this node at")
        if self.change_interval < 0:
            raise ConfigError("identifiers.follow_changes_every",
                              f"{self.change_interval} is negative")
        if self.log_keep < 1:
            raise ConfigError("identifiers.log_keep", f"{self.log_keep} must be at least 1")
        trusted_proxies(self.trusted_proxies, "api.trusted_proxies")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError("identifiers.workers", f"{self.workers} is not 1..{MAX_WORKERS}")
        if self.role not in ROLES:
            raise ConfigError("node.role", f"{self.role!r} is not one of {', '.join(ROLES)}")
        if self.role == "national" and self.parent:
            raise ConfigError("identifiers.parent", "a national node is the root: it has no parent")
        if self.parent:
            Endpoint.parse(self.parent, "identifiers.parent")
        for child, servers in (*self.delegates, *self.services):
            if not servers:
                raise ConfigError("identifiers.delegates", f"no server given for {child}")
            for server in servers:
                Endpoint.parse(server, "identifiers.delegates")
        read_secret(self.admin_secret_file)


def parse_delegation(text: str) -> tuple[str, tuple[str, ...]]:
    """``88.100.5=host:port[,host:port...]`` (replicas separated by commas)."""
    child, sep, servers = text.partition("=")
    if not sep or not child.strip() or not servers.strip():
        raise ConfigError("identifiers.delegates",
                          f"{text!r} is not PREFIX=HOST:PORT[,HOST:PORT...]")
    return prefix_key(child.strip()), tuple(s.strip() for s in servers.split(",") if s.strip())


def parse_service(text: str) -> tuple[str, tuple[str, ...]]:
    """``88.100/SERV.A=host:port[,host:port...]``: a service handle and its replicas."""
    handle, sep, servers = text.partition("=")
    if not sep or "/" not in handle or not servers.strip():
        raise ConfigError("identifiers.services",
                          f"{text!r} is not HANDLE=HOST:PORT[,HOST:PORT...]")
    return handle.strip(), tuple(s.strip() for s in servers.split(",") if s.strip())


def parse_delegation_via(text: str) -> tuple[str, str]:
    """``88.100.5=88.100/SERV.A``: a child prefix delegated through a service handle."""
    child, sep, handle = text.partition("=")
    if not sep or not child.strip() or "/" not in handle:
        raise ConfigError("identifiers.delegates_via", f"{text!r} is not PREFIX=SERVICE_HANDLE")
    return prefix_key(child.strip()), handle.strip()


def read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(SECRET_KEY, f"cannot read {path}: {exc.strerror}") from exc
    if len(secret) < 8:
        raise ConfigError(SECRET_KEY, f"{path}: the secret needs at least 8 bytes")
    return secret
