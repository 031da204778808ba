"""Typed value layouts (HS_ADMIN, HS_SITE, HS_VLIST, HS_SERV, HS_PUBKEY) and handle values."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import ProtocolError
from millnet.protocols import handle as h
from tests.unit.handle_strategies import admins, pubkeys, references, sites, values


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def utf8(s: str) -> bytes:
    return u32(len(s.encode())) + s.encode()


@settings(max_examples=150, deadline=None)
@given(values)
def test_values_round_trip(vals: tuple[h.HandleValue, ...]) -> None:
    for v in vals:
        assert h.decode_value(h.encode_value(v)) == v


@settings(max_examples=150, deadline=None)
@given(admins)
def test_admin_round_trip(rec: h.AdminRecord) -> None:
    assert h.decode_admin(h.encode_admin(rec)) == rec


@settings(max_examples=150, deadline=None)
@given(sites)
def test_site_round_trip(site: h.SiteInfo) -> None:
    assert h.decode_site(h.encode_site(site)) == site


@settings(max_examples=150, deadline=None)
@given(references)
def test_vlist_round_trip(refs: tuple[h.ValueReference, ...]) -> None:
    assert h.decode_vlist(h.encode_vlist(refs)) == refs


@settings(max_examples=150, deadline=None)
@given(pubkeys)
def test_pubkey_round_trip(key: h.PublicKeyRecord) -> None:
    assert h.decode_pubkey(h.encode_pubkey(key)) == key


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(codec="utf-8")))
def test_serv_round_trip(handle: str) -> None:
    assert h.decode_serv(h.encode_serv(handle)) == handle


def test_admin_golden_and_legacy_padding() -> None:
    perms = h.AdminPermission.ADD_HANDLE | h.AdminPermission.LIST_HANDLES
    raw = h.encode_admin(h.AdminRecord(perms, "0.NA/88.100.5", 200))
    assert raw == b"\x08\x01" + utf8("0.NA/88.100.5") + u32(200)
    # records written by old servers carry 2 more octets; hdllib reads them
    assert h.decode_admin(raw + b"\0\0") == h.decode_admin(raw)
    with pytest.raises(ProtocolError, match="HS_ADMIN: 1 unexpected trailing bytes"):
        h.decode_admin(raw + b"\0")
    with pytest.raises(ProtocolError, match=r"HS_ADMIN\.index"):
        h.decode_admin(raw[:-1])
    assert h.ALL_ADMIN_PERMISSIONS == 0x0FFF


def test_site_golden_layout() -> None:
    # The layout hdllib's Encoder.encodeSiteInfoRecord writes.
    server = h.ServerRecord(1, h.address_octets("192.0.2.7"), b"PK", (
        h.ServiceInterface(h.ServiceType.ADMIN_AND_QUERY, h.TransportProtocol.TCP, 2641),
        h.ServiceInterface(h.ServiceType.QUERY, h.TransportProtocol.UDP, 2641)))
    site = h.SiteInfo(7, (server,), (("desc", "millnet"),), primary=True, multi_primary=False,
                      protocol_major=2, protocol_minor=10)
    expected = (struct.pack(">HBBHBB", 1, 2, 10, 7, 0x80, 0) + u32(0)
                + u32(1) + utf8("desc") + utf8("millnet")
                + u32(1) + u32(1) + bytes(12) + bytes([192, 0, 2, 7]) + u32(2) + b"PK"
                + u32(2) + bytes([3, 1]) + u32(2641) + bytes([2, 0]) + u32(2641))
    assert h.encode_site(site) == expected
    decoded = h.decode_site(expected)
    assert decoded == site
    assert decoded.servers[0].ip == ipaddress.IPv4Address("192.0.2.7")
    with pytest.raises(ProtocolError, match="HS_SITE: site: 1 unexpected trailing bytes"):
        h.decode_site(expected + b"\0")


@pytest.mark.parametrize(("address", "ip"), [
    (bytes(12) + b"\x0a\x00\x00\x01", "10.0.0.1"),  # what hdllib writes
    (bytes(10) + b"\xff\xff\x0a\x00\x00\x01", "10.0.0.1"),  # IPv4-mapped, read as IPv4 too
    (ipaddress.IPv6Address("2001:db8::1").packed, "2001:db8::1"),
])
def test_server_addresses(address: bytes, ip: str) -> None:
    assert h.ServerRecord(1, address).ip == ipaddress.ip_address(ip)


def test_site_server_count_is_bounded_by_the_data() -> None:
    raw = h.encode_site(h.SiteInfo())
    at = 8 + 4 + 4  # fixed part, hash filter length, attribute count
    with pytest.raises(ProtocolError, match="HS_SITE: servers: count 1000 needs at least"):
        h.decode_site(raw[:at] + u32(1000) + raw[at + 4:])
    with pytest.raises(ValueError, match="16 octets"):
        h.encode_site(h.SiteInfo(servers=(h.ServerRecord(1, b"\x7f\0\0\x01"),)))


def test_rsa_public_key_layout() -> None:
    n = (1 << 2047) + 12345  # high bit set: Java's toByteArray adds a leading zero octet
    key = h.rsa_public_key(65537, n)
    raw = h.encode_pubkey(key)
    modulus = b"\0" + n.to_bytes(256, "big")
    assert raw == (utf8("RSA_PUB_KEY") + b"\0\0" + u32(3) + b"\x01\x00\x01"
                   + u32(257) + modulus)
    decoded = h.decode_pubkey(raw)
    assert decoded.integer("modulus") == n and decoded.integer("exponent") == 65537


def test_pubkey_errors() -> None:
    with pytest.raises(ValueError, match="RSA_PUB_KEY needs parts"):
        h.encode_pubkey(h.PublicKeyRecord("RSA_PUB_KEY", (b"\x01",)))
    raw = h.encode_pubkey(h.rsa_public_key(3, 1 << 100))
    with pytest.raises(ProtocolError, match=r"HS_PUBKEY\.modulus: length"):
        h.decode_pubkey(raw[:-1])
    with pytest.raises(ProtocolError, match=r"HS_PUBKEY\.key: 1 unexpected trailing"):
        h.decode_pubkey(raw + b"\0")
    # unknown key types (e.g. newer Handle.Net ones) keep their body opaque
    other = h.decode_pubkey(utf8("ED25519_PUB_KEY") + b"\0\0" + b"xyz")
    assert other == h.PublicKeyRecord("ED25519_PUB_KEY", (), 0, b"xyz")


def test_serv_and_vlist_errors() -> None:
    with pytest.raises(ProtocolError, match="HS_SERV: invalid UTF-8"):
        h.decode_serv(b"\xff")
    with pytest.raises(ProtocolError, match=r"HS_VLIST\[0\]\.index"):
        h.decode_vlist(u32(1) + utf8("a/bc"))
    with pytest.raises(ProtocolError, match="HS_VLIST: 2 unexpected trailing"):
        h.decode_vlist(u32(0) + b"ab")


def test_value_wire_layout() -> None:
    v = h.HandleValue(7, "URL", b"x", h.TTLType.ABSOLUTE, 99, 1234, h.Permission.PUBLIC_READ,
                      (h.ValueReference("a/b", 1),))
    assert h.encode_value(v) == (u32(7) + u32(1234) + b"\x01" + u32(99) + b"\x02" + utf8("URL")
                                 + u32(1) + b"x" + u32(1) + utf8("a/b") + u32(1))
    with pytest.raises(ProtocolError, match=r"^references\[0\]\.index: needs 4 bytes"):
        h.decode_value(h.encode_value(v)[:-1])
