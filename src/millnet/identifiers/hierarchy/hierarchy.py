"""The national / secondary / enterprise hierarchy: delegations down, root hints up.

* A parent node delegates a child prefix by holding ``0.NA/<child>`` with the HS_SITE of the
  node(s) serving it (:func:`register_delegation`); :func:`~.delegation.locate` then answers
  SERVICE_REFERRAL for handles under the child prefix.
* A node that neither serves nor knows a prefix refers the client *up* to its parent, like
  DNS root hints (:func:`parent_referral`): an enterprise node asked for ``88.100.6/X`` refers
  to its secondary node, which answers (it serves ``88.100``) or refers further up; the
  national node, which has no parent, answers SERVER_NOT_RESP.
* Replicas: one HS_SITE may list several servers (a site of replicas), and a record may hold
  several HS_SITE values; :func:`servers_of` flattens them into the list a resolver tries in
  order, moving to the next one when a server does not answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from millnet.errors import ConfigError, ProtocolError
from millnet.identifiers.core.delegation import (
    ADMIN_SUFFIX,
    DELEGATION_TYPES,
    MAX_DELEGATION_DEPTH,
    SECKEY_INDEX,
    SITE_INDEX,
    Referral,
    admin_record_value,
    ancestors,
    prefix_key,
    site_value,
)
from millnet.identifiers.core.errors import HandleNotFound
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import Server
from millnet.protocols.handle import (
    HandleValue,
    Permission,
    ServerRecord,
    ServiceInterface,
    ServiceType,
    SiteInfo,
    TransportProtocol,
    ValueReference,
    address_octets,
    decode_site,
    encode_serv,
    prefix_handle,
)

ROLES = ("national", "secondary", "enterprise")
_QUERY = (ServiceType.QUERY, ServiceType.ADMIN_AND_QUERY)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server's address: ``host:port`` (UDP and TCP on the same port) or
    ``host:udp/tcp``."""

    host: str
    udp_port: int
    tcp_port: int

    @classmethod
    def parse(cls, text: str, field: str = "endpoint") -> Endpoint:
        host, sep, ports = text.strip().rpartition(":")
        udp, _, tcp = ports.partition("/")
        try:
            udp_port = int(udp)
            tcp_port = int(tcp) if tcp else udp_port
        except ValueError:
            raise ConfigError(field, f"{text!r} is not host:port or host:udp/tcp") from None
        if not sep or not host or not (0 < udp_port < 65536 and 0 < tcp_port < 65536):
            raise ConfigError(field, f"{text!r} is not host:port or host:udp/tcp")
        return cls(host.strip("[]"), udp_port, tcp_port)


def server_record(server_id: int, ep: Endpoint, http_port: int | None = None) -> ServerRecord:
    interfaces = [ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP,
                                   ep.tcp_port),
                  ServiceInterface(ServiceType.QUERY, TransportProtocol.UDP, ep.udp_port)]
    if http_port is not None:
        interfaces.append(ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.HTTP,
                                           http_port))
    return ServerRecord(server_id, address_octets(ep.host), interfaces=tuple(interfaces))


def site_of(endpoints: Sequence[Endpoint], description: str = "millnet identifier node",
            ) -> SiteInfo:
    """One site whose servers are ``endpoints`` (replicas of the same prefix)."""
    if not endpoints:
        raise ValueError("a site needs at least one server")
    return SiteInfo(servers=tuple(server_record(i, ep) for i, ep in enumerate(endpoints, 1)),
                    attributes=(("desc", description),))


def servers_of(values: Sequence[HandleValue]) -> list[Server]:
    """The servers named by the HS_SITE values of a referral, in order, each with its query
    ports (``udp_port`` 0 when it offers no UDP interface). Values that do not decode, and
    servers without a TCP or UDP query interface, are skipped."""
    found: list[Server] = []
    for value in values:
        if not value.type.startswith("HS_SITE"):
            continue  # HS_SERV (a service handle) would need one more resolution
        try:
            site = decode_site(value.data)
        except ProtocolError:
            continue
        for record in site.servers:
            udp = tcp = 0
            for itf in record.interfaces:
                if itf.service_type not in _QUERY:
                    continue
                if itf.protocol == TransportProtocol.UDP and not udp:
                    udp = itf.port
                elif itf.protocol == TransportProtocol.TCP and not tcp:
                    tcp = itf.port
            if not (udp or tcp):
                continue
            server = Server(str(record.ip), udp, tcp)
            if server not in found:
                found.append(server)
    return found


def parent_referral(parent: SiteInfo | None, handle: str) -> Referral | None:
    """The referral up to ``parent`` for a handle no prefix of which is known here."""
    if parent is None:
        return None
    return Referral(handle.partition("/")[0], (site_value(parent),))


def _delegable(parent_prefix: str, child_prefix: str) -> tuple[str, str]:
    """(parent, child) as prefix keys; ConfigError unless the child is below the parent and
    at most :data:`~.delegation.MAX_DELEGATION_DEPTH` labels deep (deeper records would never
    be followed)."""
    parent, child = prefix_key(parent_prefix), prefix_key(child_prefix)
    if parent not in ancestors(child)[1:]:
        raise ConfigError("delegate", f"{child} is not below {parent}")
    if child.count(".") >= MAX_DELEGATION_DEPTH:
        raise ConfigError("delegate", f"{child} has more than {MAX_DELEGATION_DEPTH} labels")
    return parent, child


def register_delegation(store: IdentifierStore, parent_prefix: str, child_prefix: str,
                        sites: Sequence[SiteInfo], *, now: int = 0) -> bool:
    """Make this (parent) node delegate ``child_prefix``: ``0.NA/<child>`` with one HS_SITE
    per site (indexes 1, 2, ...) and an HS_ADMIN naming the parent's admin
    (``300:<parent>/ADMIN``), who may change or withdraw the delegation. Idempotent: the
    HS_SITE values are brought up to ``sites``. True if the record was created."""
    parent, child = _delegable(parent_prefix, child_prefix)
    if not sites:
        raise ConfigError("delegate", f"no server given for {child}")
    wanted = tuple(site_value(site, SITE_INDEX + i, timestamp=now)
                   for i, site in enumerate(sites))
    record = prefix_handle(child)
    admin = admin_record_value(ValueReference(f"{parent}/{ADMIN_SUFFIX}", SECKEY_INDEX),
                               timestamp=now)
    try:
        current = store.get(record, types=("HS_SITE",))
    except HandleNotFound:
        store.create_handle(record, (*wanted, admin))
        return True
    if {(v.index, v.data) for v in current} != {(v.index, v.data) for v in wanted}:
        stale = [v.index for v in current]
        if stale:
            store.remove_values(record, stale)
        store.add_values(record, wanted)
    return False


def register_service_delegation(store: IdentifierStore, parent_prefix: str, child_prefix: str,
                                service_handle: str, *, now: int = 0) -> None:
    """Delegate ``child_prefix`` through a service handle: ``0.NA/<child>`` gets an HS_SERV
    value naming ``service_handle``, whose HS_SITE values (kept with
    :func:`register_service`) list the servers. Several prefixes served by the same replicas
    then change servers in one place. Idempotent."""
    parent, child = _delegable(parent_prefix, child_prefix)
    record = prefix_handle(child)
    serv = HandleValue(SITE_INDEX, "HS_SERV", encode_serv(service_handle), timestamp=now,
                       permissions=int(Permission.PUBLIC_READ | Permission.ADMIN_READ
                                       | Permission.ADMIN_WRITE))
    admin = admin_record_value(ValueReference(f"{parent}/{ADMIN_SUFFIX}", SECKEY_INDEX),
                               timestamp=now)
    try:
        current = store.get(record, types=DELEGATION_TYPES)
    except HandleNotFound:
        store.create_handle(record, (serv, admin))
        return
    if [(v.type, v.data) for v in current] != [("HS_SERV", serv.data)]:
        if current:
            store.remove_values(record, [v.index for v in current])
        store.add_values(record, [serv])


def register_service(store: IdentifierStore, service_handle: str, sites: Sequence[SiteInfo],
                     admin: ValueReference, *, now: int = 0) -> None:
    """Create or update a service handle: one HS_SITE per site (indexes 1, 2, ...)."""
    wanted = tuple(site_value(site, SITE_INDEX + i, timestamp=now)
                   for i, site in enumerate(sites))
    try:
        current = store.get(service_handle, types=("HS_SITE",))
    except HandleNotFound:
        store.create_handle(service_handle, (*wanted, admin_record_value(admin, timestamp=now)))
        return
    if current:
        store.remove_values(service_handle, [v.index for v in current])
    store.add_values(service_handle, wanted)


__all__ = ["ROLES", "Endpoint", "parent_referral", "register_delegation",
           "register_service", "register_service_delegation",
           "server_record", "servers_of", "site_of"]
