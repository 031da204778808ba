"""Prefix records (``0.NA/<prefix>``) for standard Handle clients (issue 10).

Every Handle.Net client asks for the prefix record before anything else. hdllib
(``HandleResolver.buildPrefixResolutionRequest``, as vendored in teleinfo-dev/id-pointer-sdk)
sends RESOLUTION of ``0.NA/<prefix>`` for the types HS_SITE, HS_SITE.6, HS_SERV, HS_NAMESPACE
with the flags of the request it serves (REC|CA|PO by default), recursion count one more,
version 2.10 suggesting 2.11; id-pointer-sdk adds an empty "auth bytes" string. The requests
here are built with :mod:`struct` from that layout, independently of the encoder.

* The UDP fast path answers them (filtered or not) byte for byte as the general path does.
* Over UDP they are answered in one round trip: the filtered answer fits four times the
  request; an unfiltered one (or a site whose servers carry public keys) is over that budget
  and goes whole within the reflection limiter's grace.
* A reflection attempt (many over-budget requests naming one source) is held to the bound:
  four times what it sent plus the source network's bucket.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.identifiers.core.delegation import bootstrap_prefix, site_value
from millnet.identifiers.core.fastpath import FastResolver, sqlite_path
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.transport import NativeServer, is_truncation_notice
from millnet.identifiers.wire.udpgrace import NETWORK_BURST, NETWORK_RATE, ReflectionLimiter
from millnet.protocols.handle import (
    HandleValue,
    OpFlag,
    ResolutionResponse,
    ServerRecord,
    SiteInfo,
    address_octets,
    decode_message,
)

NOW = 1_790_000_000
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),),
                attributes=(("desc", "millnet national node"),))
#: a site as big national services publish: two servers, each with a 2048-bit RSA key
KEYED = SiteInfo(servers=tuple(ServerRecord(i, address_octets(f"10.0.0.{i}"), b"k" * 280)
                               for i in (1, 2)))
HDLLIB_TYPES = ("HS_SITE", "HS_SITE.6", "HS_SERV", "HS_NAMESPACE")
REC_CA_PO = int(OpFlag.REC | OpFlag.CA | OpFlag.PO)


def hdllib_request(handle: str, types: tuple[str, ...] = HDLLIB_TYPES, *,
                   indexes: tuple[int, ...] = (), flags: int = REC_CA_PO,
                   auth_bytes: bool = False, request_id: int = 4242,
                   version: tuple[int, int, int, int] = (2, 10, 2, 11)) -> bytes:
    """A RESOLUTION request laid out as hdllib's ``Encoder`` writes it."""
    def utf8(text: str) -> bytes:
        raw = text.encode()
        return struct.pack(">I", len(raw)) + raw

    body = utf8(handle) + struct.pack(f">I{len(indexes)}I", len(indexes), *indexes)
    body += struct.pack(">I", len(types)) + b"".join(map(utf8, types))
    body += struct.pack(">I", 0) if auth_bytes else b""
    header = struct.pack(">IIIHBBII", 1, 0, flags, 0xFFFF, 1, 0, 0, len(body))
    message = header + body + struct.pack(">I", 0)  # an empty credential
    major, minor, smajor, sminor = version
    return struct.pack(">BBBBIIII", major, minor, smajor, sminor, 0, request_id, 0,
                       len(message)) + message


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[NativeHandler, FastResolver]]:
    url = f"sqlite:///{tmp_path / 'ids.sqlite'}"
    store = IdentifierStore.open(url)
    bootstrap_prefix(store, "88.100.5", "s3cret-admin", SITE, now=NOW)
    store.create_handle("0.NA/88.100.5.9", [site_value(KEYED)])  # a delegated child prefix
    store.create_handle("0.NA/88.100.5.8", [  # delegated through a service handle
        HandleValue(1, "HS_SERV", b"88.100.5/SERVICE", permissions=0x0E)])
    store.create_handle("88.100.5/PUMP-1", [HandleValue(1, "URL", b"https://plant.example/1"),
                                            HandleValue(7, "HS_SITE.PREFIX", b"x")])
    service = IdentifierService(store, ["88.100.5"], clock=lambda: NOW)
    path = sqlite_path(url)
    assert path is not None
    fast = FastResolver(path, service.served, clock=lambda: NOW)
    yield NativeHandler(service, SITE, clock=lambda: NOW), fast
    fast.close()
    store.close()


def general(handler: NativeHandler, data: bytes) -> bytes:
    from millnet.protocols.handle import encode_message

    replies = handler(decode_message(data), ("127.0.0.1", 5000))
    assert isinstance(replies, list)
    return encode_message(replies[0])


@pytest.mark.parametrize("handle", ["0.NA/88.100.5", "0.na/88.100.5", "0.NA/88.100.5.9",
                                    "0.NA/88.100.5.8", "88.100.5/PUMP-1"])
@pytest.mark.parametrize("types", [HDLLIB_TYPES, (), ("HS_SITE", "HS_SERV"), ("HS_SITE.",),
                                   ("hs_admin", "HS_VLIST"), ("url",)])
@pytest.mark.parametrize("shape", [{}, {"auth_bytes": True}, {"indexes": (100, 1)},
                                   {"flags": int(OpFlag.RD | OpFlag.PO)},
                                   {"version": (2, 3, 2, 10)}, {"version": (2, 11, 0, 0)}])
def test_prefix_records_take_the_fast_path(node: tuple[NativeHandler, FastResolver],
                                           handle: str, types: tuple[str, ...],
                                           shape: dict[str, object]) -> None:
    handler, fast = node
    data = hdllib_request(handle, types, **shape)  # type: ignore[arg-type]
    want = general(handler, data)
    got = fast(data)
    if decode_message(want).response_code != 1:
        assert got is None  # nothing selected: the general path says so
    else:
        assert got == want


def test_a_changed_record_is_answered_at_once(node: tuple[NativeHandler, FastResolver],
                                              tmp_path: Path) -> None:
    """The remembered selection is used only with the stored form it was made from."""
    handler, fast = node
    data = hdllib_request("0.NA/88.100.5")
    before = fast(data)
    assert before is not None and before == fast(data)  # the second from the memo
    moved = SiteInfo(servers=(ServerRecord(1, address_octets("192.0.2.9")),))
    with IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}") as store:
        store.modify_values("0.NA/88.100.5", [site_value(moved)])
    after = fast(data)
    assert after is not None and after != before and after == general(handler, data)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(handle=st.sampled_from(["0.NA/88.100.5", "0.NA/88.100.5.9", "88.100.5/PUMP-1",
                               "0.NA/88.100.6", "0.NA/88.100.5.9.1"]),
       indexes=st.lists(st.sampled_from([1, 7, 100, 200, 300, 2**32 - 1]), max_size=4),
       types=st.lists(st.sampled_from(["HS_SITE", "HS_SITE.", "hs_site.prefix", "HS_SERV",
                                       "HS_ADMIN", "HS_VLIST", "URL", "HS_", "", "ü"]),
                      max_size=5))
def test_any_filter_answers_as_the_general_path(node: tuple[NativeHandler, FastResolver],
                                                handle: str, indexes: list[int],
                                                types: list[str]) -> None:
    handler, fast = node
    data = hdllib_request(handle, tuple(types), indexes=tuple(indexes))
    got = fast(data)
    want = general(handler, data)
    if got is not None:
        assert got == want
    elif handle != "0.NA/88.100.6":  # not held: the parent's (a referral, an error)
        assert decode_message(want).response_code != 1


def _ask(port: int, data: bytes, source: str = "127.0.0.1", wait: float = 0.3) -> list[bytes]:
    """The datagrams answering ``data`` within ``wait`` s of the first one."""
    got: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(2.0)
        s.sendto(data, ("127.0.0.1", port))
        try:
            while True:
                got.append(s.recv(65_536))
                s.settimeout(wait)
        except TimeoutError:
            return got


def _reassembled(datagrams: list[bytes]) -> bytes:
    """As hdllib does: each datagram's payload at sequence × 492, until all are there."""
    length = int.from_bytes(datagrams[0][16:20], "big")
    payload = bytearray(length)
    for datagram in datagrams:
        sequence = int.from_bytes(datagram[12:16], "big")
        payload[sequence * 492:sequence * 492 + len(datagram) - 20] = datagram[20:]
    envelope = bytearray(datagrams[0][:20])
    envelope[2] &= ~0x20  # a whole message now
    envelope[12:16] = bytes(4)
    return bytes(envelope) + bytes(payload)


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(("handle", "types", "within_budget"), [
    ("0.NA/88.100.5", HDLLIB_TYPES, True),  # hdllib's request: fits four times
    ("0.NA/88.100.5", (), False),  # the whole record (HS_ADMIN, HS_SITE, HS_VLIST)
    ("0.NA/88.100.5.9", HDLLIB_TYPES, False),  # two servers with public keys: 2 datagrams
])
def test_a_standard_client_gets_its_prefix_record_in_one_round_trip(
        node: tuple[NativeHandler, FastResolver], fast_path: bool, handle: str,
        types: tuple[str, ...], within_budget: bool) -> None:
    handler, fast = node
    data = hdllib_request(handle, types)

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0,
                                fast=fast if fast_path else None) as server:
            got = await asyncio.to_thread(_ask, server.udp_port, data)
            assert got and not any(map(is_truncation_notice, got))
            answer = decode_message(_reassembled(got))
            assert answer.response_code == 1 and answer.envelope.request_id == 4242
            assert isinstance(answer.body, ResolutionResponse)
            assert any(v.type == "HS_SITE" for v in answer.body.values)
            assert (sum(map(len, got)) <= 4 * len(data)) == within_budget
            assert server.udp_stats.graced == (0 if within_budget else 1)

    asyncio.run(scenario())
    assert (fast.answered == 1) == fast_path


def test_a_reflection_attempt_is_held_to_the_bound(
        node: tuple[NativeHandler, FastResolver]) -> None:
    """Over-budget requests naming one source (a victim's address) as fast as they go: the
    answers it receives total at most four times the requests plus the network's bucket;
    once that is spent, 20-octet notices. Another /24 has its own bucket."""
    handler, fast = node
    data = hdllib_request("0.NA/88.100.5", ())  # ~70 octets for ~390: over the budget
    sent = 400

    def flood(port: int, source: str) -> tuple[int, int, int]:
        received = whole = notices = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((source, 0))
            s.settimeout(1.0)
            for _ in range(sent):
                s.sendto(data, ("127.0.0.1", port))
                reply = s.recv(65_536)  # one at a time: nothing lost on loopback
                received += len(reply)
                if is_truncation_notice(reply):
                    notices += 1
                else:
                    whole += 1
        return received, whole, notices

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0, fast=fast) as server:
            start = time.monotonic()
            received, whole, notices = await asyncio.to_thread(flood, server.udp_port,
                                                               "127.0.0.1")
            elapsed = time.monotonic() - start
            answer = len(general(handler, data))
            allowed = NETWORK_BURST + NETWORK_RATE * elapsed
            assert whole * answer <= allowed and notices == sent - whole
            assert received <= 4 * len(data) * sent + allowed
            assert whole >= NETWORK_BURST // answer  # the burst itself is served
            assert server.udp_stats.graced == whole
            # A client in another /24 is not held by the victim's bucket.
            other = await asyncio.to_thread(_ask, server.udp_port, data, "127.0.1.1")
            assert len(other) == 1 and not is_truncation_notice(other[0])

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_network_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = ReflectionLimiter(network_burst=1000, network_rate=100, clock=clock)
    assert [limiter.allow("192.0.2.7", 400) for _ in range(3)] == [True, True, False]
    assert limiter.allow("192.0.2.200", 200)  # the same /24: the 200 octets left
    assert not limiter.allow("192.0.2.1", 1)
    assert limiter.allow("192.0.3.1", 400)  # another /24
    clock.now += 4.0  # 400 octets back
    assert limiter.allow("192.0.2.7", 400) and not limiter.allow("192.0.2.7", 10)
    clock.now += 1000  # long gone: forgotten, and full again
    assert limiter.allow("192.0.2.7", 1000)
    assert limiter.networks <= 2
    assert (limiter.stats.granted, limiter.stats.refused) == (6, 3)


def test_the_process_bucket_bounds_many_networks() -> None:
    clock = Clock()
    limiter = ReflectionLimiter(total_burst=10_000, total_rate=1000, clock=clock)
    granted = sum(limiter.allow(f"10.{i // 256}.{i % 256}.1", 500) for i in range(1000))
    assert granted == 20
    clock.now += 1.0
    assert sum(limiter.allow(f"10.9.{i}.1", 500) for i in range(10)) == 2


def test_answers_too_large_and_networks_too_many_get_no_grace() -> None:
    clock = Clock()
    limiter = ReflectionLimiter(max_answer=2048, max_networks=3, clock=clock)
    assert not limiter.allow("192.0.2.1", 2049)
    assert all(limiter.allow(f"192.0.{i}.1", 100) for i in range(3))
    assert not limiter.allow("192.0.9.1", 100)  # the generation is full
    assert limiter.allow("192.0.1.1", 100)  # a known network still is served
    clock.now += 8.0  # two rotations later, room again
    assert limiter.allow("192.0.9.1", 100)


def test_ipv6_sources_are_charged_by_56() -> None:
    limiter = ReflectionLimiter(network_burst=1000, clock=Clock())
    assert limiter.allow("2001:db8:0:1200::1", 1000)
    assert not limiter.allow("2001:db8:0:12ff:ffff::9%eth0", 1)  # the same /56
    assert limiter.allow("2001:db8:0:1300::1", 1000)
    assert limiter.allow("::ffff:192.0.2.1", 1000)
    assert not limiter.allow("192.0.2.99", 1)  # IPv4-mapped: the same /24
