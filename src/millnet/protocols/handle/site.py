"""HS_SITE data: a service site and its servers (RFC 3651 3.2.2, as hdllib encodes it).

Three places where hdllib (and the CAICT SDK, which interoperates with it) differ from the RFC
text, and this codec follows hdllib:

* the data format version hdllib writes is 1 (the RFC defines version 0);
* the primary mask: 0x80 marks a primary site and 0x40 a multi-primary service (the RFC text
  names the first bit MultiPrimary and the second PrimarySite);
* an IPv4 server address is 12 zero octets then the 4 address octets (IPv4-compatible form,
  what hdllib writes and tests with ``isIPv4``), not the ``::ffff:a.b.c.d`` mapped form; both
  forms are read as IPv4.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from millnet.errors import ProtocolError

from .constants import SITE_MULTI_PRIMARY, SITE_PRIMARY, HashOption, ServiceType, TransportProtocol
from .wire import U32, Reader, fail, put_octets, put_utf8

_SITE_FIXED = struct.Struct(">HBBHBB")  # format version, major, minor, serial, mask, hash
_INTERFACE = struct.Struct(">BBI")  # service type, transport protocol, port
_V4_PREFIXES = (bytes(12), bytes(10) + b"\xff\xff")
_MIN_SERVER = 4 + 16 + 4 + 4

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ServiceInterface:
    service_type: int = ServiceType.ADMIN_AND_QUERY
    protocol: int = TransportProtocol.TCP
    port: int = 2641


@dataclass(frozen=True, slots=True)
class ServerRecord:
    server_id: int
    address: bytes  # 16 octets
    public_key: bytes = b""  # HS_PUBKEY layout, see values.decode_pubkey
    interfaces: tuple[ServiceInterface, ...] = ()

    @property
    def ip(self) -> IPAddress:
        if self.address[:12] in _V4_PREFIXES:
            return ipaddress.IPv4Address(self.address[12:])
        return ipaddress.IPv6Address(self.address)


def address_octets(ip: str | IPAddress) -> bytes:
    """The 16-octet server address hdllib writes for ``ip``."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv4Address):
        return bytes(12) + addr.packed
    return addr.packed


@dataclass(frozen=True, slots=True)
class SiteInfo:
    serial_number: int = 1
    servers: tuple[ServerRecord, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    primary: bool = True
    multi_primary: bool = False
    protocol_major: int = 2
    protocol_minor: int = 10
    hash_option: int = HashOption.BY_PREFIX
    hash_filter: bytes = b""  # "reserved for future use"
    data_format_version: int = 1

    @property
    def primary_mask(self) -> int:
        return (SITE_PRIMARY if self.primary else 0) | (
            SITE_MULTI_PRIMARY if self.multi_primary else 0)


def write_site(buf: bytearray, site: SiteInfo) -> None:
    buf += _SITE_FIXED.pack(site.data_format_version, site.protocol_major,
                            site.protocol_minor, site.serial_number, site.primary_mask,
                            site.hash_option)
    put_octets(buf, site.hash_filter)
    buf += U32.pack(len(site.attributes))
    for name, value in site.attributes:
        put_utf8(buf, name)
        put_utf8(buf, value)
    buf += U32.pack(len(site.servers))
    for server in site.servers:
        if len(server.address) != 16:
            raise ValueError(f"server {server.server_id}: address must be 16 octets")
        buf += U32.pack(server.server_id)
        buf += server.address
        put_octets(buf, server.public_key)
        buf += U32.pack(len(server.interfaces))
        for itf in server.interfaces:
            buf += _INTERFACE.pack(itf.service_type, itf.protocol, itf.port)


def _read_server(r: Reader) -> ServerRecord:
    server_id = r.u32("server_id")
    address = r.raw(16, "address")
    public_key = r.octets("public_key")
    n = r.count("interfaces", _INTERFACE.size)
    interfaces = tuple(ServiceInterface(*r.unpack(_INTERFACE, "interface")) for _ in range(n))
    return ServerRecord(server_id, address, public_key, interfaces)


def read_site(r: Reader) -> SiteInfo:
    version, major, minor, serial, mask, hash_option = r.unpack(_SITE_FIXED, "fixed fields")
    hash_filter = r.octets("hash_filter")
    n = r.count("attributes", 8)
    attributes = tuple((r.utf8("attribute.name"), r.utf8("attribute.value"))
                       for _ in range(n))
    n = r.count("servers", _MIN_SERVER)
    i = 0
    try:
        servers = []
        for i in range(n):  # noqa: B007 - i names the failing item below
            servers.append(_read_server(r))
    except ProtocolError as exc:
        raise ProtocolError(f"servers[{i}].{exc}") from None
    return SiteInfo(serial, tuple(servers), attributes, bool(mask & SITE_PRIMARY),
                    bool(mask & SITE_MULTI_PRIMARY), major, minor, hash_option, hash_filter,
                    version)


def encode_site(site: SiteInfo) -> bytes:
    buf = bytearray()
    write_site(buf, site)
    return bytes(buf)


def decode_site(data: bytes) -> SiteInfo:
    r = Reader(data)
    try:
        site = read_site(r)
        r.done("site")
    except ProtocolError as exc:
        raise fail("HS_SITE", str(exc)) from None
    return site
