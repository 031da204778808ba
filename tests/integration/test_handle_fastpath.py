"""The UDP resolution fast path answers byte for byte as the general path does, sees every
write at once, and leaves every other request shape to the general path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from millnet.identifiers.core.delegation import admin_record_value, bootstrap_prefix, site_value
from millnet.identifiers.core.fastpath import FastResolver, sqlite_path
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import Server, request, resolution_request
from millnet.identifiers.http.rest import HotResolution, create_handle_app
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    Envelope,
    HandleValue,
    Header,
    Message,
    OpFlag,
    Permission,
    ResolutionRequest,
    ResolutionResponse,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    decode_message,
    encode_message,
)

NOW = 1_790_000_000
SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
PRIVATE = int(Permission.ADMIN_READ | Permission.ADMIN_WRITE)
PUMP = (HandleValue(1, "URL", b"https://plant.example/pumps/1", timestamp=NOW - 5),
        HandleValue(2, "EMAIL", b"ops@plant.example", permissions=PRIVATE),
        HandleValue(3, "MODEL", "泵-200".encode(), ttl_type=1, ttl=NOW + 99,
                    references=(ValueReference("88.100.5/LINE-1", 7),)))
ADMIN = ValueReference("88.100.5/ADMIN", 300)


@pytest.fixture
def node(tmp_path: Path) -> tuple[IdentifierService, NativeHandler, FastResolver]:
    url = f"sqlite:///{tmp_path / 'ids.sqlite'}"
    store = IdentifierStore.open(url)
    bootstrap_prefix(store, "88.100.5", "s3cret-admin", SITE, now=NOW)
    store.create_handle("88.100.5/PUMP-1", (*PUMP, admin_record_value(ADMIN)))
    store.create_handle("88.100.5/HIDDEN", [PUMP[1]])
    store.create_handle("0.NA/88.100.5.9", [site_value(SITE)])  # a delegated child prefix
    service = IdentifierService(store, ["88.100.5"], clock=lambda: NOW)
    path = sqlite_path(url)
    assert path is not None
    return service, NativeHandler(service, SITE, clock=lambda: NOW), FastResolver(
        path, service.served, clock=lambda: NOW)


def _request(handle: str, *, flags: int = 0, version: tuple[int, int, int, int] = (2, 10, 2, 10),
             indexes: tuple[int, ...] = (), types: tuple[str, ...] = (),
             credential: bytes | None = b"") -> bytes:
    major, minor, smajor, sminor = version
    return encode_message(Message(ResolutionRequest(handle, indexes, types), Header(flags),
                                  Envelope(major, minor, smajor, sminor, 77, 1234), None,
                                  credential))


def _general(handler: NativeHandler, data: bytes) -> bytes:
    replies = handler(decode_message(data), ("127.0.0.1", 5000))
    assert isinstance(replies, list)
    return encode_message(replies[0])


@pytest.mark.parametrize("version", [(2, 10, 2, 10), (2, 3, 2, 10), (2, 1, 0, 0),
                                     (2, 11, 2, 11), (2, 11, 2, 12)])
@pytest.mark.parametrize("flags", [0, int(OpFlag.RD), int(OpFlag.REC | OpFlag.AT | OpFlag.PO),
                                   int(OpFlag.RD | OpFlag.DNRF | OpFlag.CA)])
@pytest.mark.parametrize("handle", ["88.100.5/PUMP-1", "88.100.5/ADMIN"])
@pytest.mark.parametrize("credential", [b"", None])  # an empty credential, or none at all
def test_same_bytes_as_the_general_path(node: tuple[IdentifierService, NativeHandler,
                                                    FastResolver],
                                        version: tuple[int, int, int, int], flags: int,
                                        handle: str, credential: bytes | None) -> None:
    _, handler, fast = node
    data = _request(handle, flags=flags, version=version, credential=credential)
    answer = fast(data)
    assert answer is not None
    assert answer == _general(handler, data)
    body = decode_message(answer).body
    assert isinstance(body, ResolutionResponse)
    assert all(v.permissions & Permission.PUBLIC_READ for v in body.values)


@pytest.mark.parametrize("data", [
    _request("88.100.5/NOPE"),  # not found: the general path answers 100
    _request("88.100.5/HIDDEN"),  # no public value: 200
    _request("88.100.5/\x00bad"),  # invalid handle
    _request("0.NA/88.100.7"),  # a prefix record not held here: the parent's referral logic
    _request("88.100.5.9/X"),  # a delegated prefix: a referral
    _request("88.200/X"),  # no prefix of it here
    _request("88.100.5/PUMP-1", types=("NOPE",)),  # nothing selected: 200
    _request("88.100.5/PUMP-1", indexes=tuple(range(40))),  # a long filter: the codec's
    _request("88.100.5/PUMP-1", flags=int(OpFlag.CT)),
    _request("88.100.5/PUMP-1", credential=b"\x00" * 8),
    _request("88.100.5/PUMP-1") + b"\0",  # trailing garbage
    _request("88.100.5/PUMP-1")[:-1],  # truncated
    _request("88.100.5/PUMP-1", version=(1, 9, 0, 0)),
    b"",
])
def test_other_shapes_take_the_general_path(node: tuple[IdentifierService, NativeHandler,
                                                        FastResolver], data: bytes) -> None:
    assert node[2](data) is None


def test_writes_are_visible_at_once(node: tuple[IdentifierService, NativeHandler,
                                                FastResolver]) -> None:
    service, handler, fast = node
    data = _request("88.100.5/PUMP-1")
    before = fast(data)
    service.modify_values(ADMIN, "88.100.5/PUMP-1",
                          [HandleValue(1, "URL", b"https://plant.example/moved")])
    after = fast(data)
    assert after is not None and after != before and after == _general(handler, data)
    service.delete_handle(ADMIN, "88.100.5/PUMP-1")
    assert fast(data) is None


def test_served_over_udp(node: tuple[IdentifierService, NativeHandler, FastResolver]) -> None:
    _, handler, fast = node

    async def scenario() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0, fast=fast) as server:
            where = Server("127.0.0.1", server.udp_port, server.tcp_port)
            answer = await request(resolution_request("88.100.5/PUMP-1"), where, udp=True)
            assert isinstance(answer.body, ResolutionResponse)
            assert answer.body.values[:2] == (PUMP[0], PUMP[2])
            missing = await request(resolution_request("88.100.5/NOPE"), where, udp=True)
            assert missing.response_code == 100  # the general path, on the event loop
            assert server.udp_stats.requests == 2

    asyncio.run(scenario())
    assert fast.answered == 1


def test_rest_hot_resolution_answers_as_the_general_route(
        node: tuple[IdentifierService, NativeHandler, FastResolver]) -> None:
    service, _, fast = node
    hot = create_handle_app(service.store, service, fast=fast)
    plain = create_handle_app(service.store, service)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hot),
                                     base_url="http://node") as a, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                  base_url="http://node") as b:
            for path in ("/api/handles/88.100.5/PUMP-1", "/api/handles/88.100.5/ADMIN",
                         "/api/handles/88.100.5/NOPE", "/api/handles/88.100.5/HIDDEN",
                         "/api/handles/88.100.5/PUMP-1?type=URL", "/api/handles/0.NA/88.100.5"):
                got, want = await a.get(path), await b.get(path)
                assert (got.status_code, got.content) == (want.status_code, want.content), path

    asyncio.run(scenario())
    assert isinstance(hot, HotResolution)
    assert hot.answered == 2  # PUMP-1 and ADMIN; the others took the general route


@pytest.mark.parametrize("flags", [0, int(OpFlag.RD)])
def test_a_request_suggesting_version_1_takes_the_general_path(
        node: tuple[IdentifierService, NativeHandler, FastResolver], flags: int) -> None:
    """Found by fuzzing: a 2.3 request suggesting 1.0 made the fast path look up a digest
    algorithm it has no hash for (KeyError), and the general path build a 1.0 answer that the
    encoder refused; it is answered in its own version, 2.3."""
    _, handler, fast = node
    wire = bytearray(_request("88.100.5/PUMP-1", flags=flags, version=(2, 3, 2, 3)))
    wire[2:4] = b"\x01\x00"  # suggested 1.0 (the encoder refuses to write it)
    data = bytes(wire)
    assert fast(data) is None
    answer = decode_message(_general(handler, data))
    assert isinstance(answer.body, ResolutionResponse)
    assert (answer.envelope.major, answer.envelope.minor) == (2, 3)
    assert (answer.request_digest is not None) == bool(flags)
