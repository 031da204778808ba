"""What unauthenticated requests may cost a node (issue 9, findings 3 and 9).

* Finding 3: :func:`locate` ran one query per ancestor prefix, so one 317-byte UDP request for
  a 255-character prefix ``1.1.1...`` held the event loop for 32 ms. Now any name costs at most
  one statement (counted here on the real store, SQLite and PostgreSQL), and the answers are
  those of before (longest served or delegated prefix, prefix records, HS_SERV).
* Finding 9: an 80-byte UDP request got a 512-byte first fragment. Now everything sent in
  answer to one UDP request is at most four times its size; a larger answer is replaced by a
  20-octet truncation notice, and the client asks over TCP at once (real sockets, general and
  fast path). These tests hold the budget alone (``udp_grace=None``); the rate-limited grace
  for answers over it is tested in ``test_handle_prefix_records.py``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from millnet.errors import ConfigError, InvalidInput
from millnet.identifiers import IdentifierService, IdentifierStore
from millnet.identifiers.core.delegation import (
    MAX_DELEGATION_DEPTH,
    Local,
    Referral,
    ancestors,
    bootstrap_prefix,
    delegation,
    held_records,
    locate,
    prefix_key,
    site_value,
)
from millnet.identifiers.core.errors import NotResponsible
from millnet.identifiers.core.fastpath import FastResolver
from millnet.identifiers.core.values import canonical_handle
from millnet.identifiers.hierarchy.client import Server, request, request_udp, resolution_request
from millnet.identifiers.hierarchy.hierarchy import (
    register_delegation,
    register_service,
    register_service_delegation,
)
from millnet.identifiers.wire.transport import (
    NativeServer,
    Peer,
    is_truncation_notice,
    truncation_notice,
)
from millnet.protocols.handle import (
    ErrorResponse,
    HandleValue,
    Message,
    OpCode,
    Permission,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
    encode_message,
    make_response,
    prefix_handle,
)
from millnet.protocols.handle.constants import ENVELOPE_SIZE
from tests.integration.identifier_fixtures import identifier_url, shared_store, store

__all__ = ["identifier_url", "shared_store", "store"]

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
OTHER = SiteInfo(servers=(ServerRecord(2, address_octets("10.0.0.2")),))
DEEP = "1." * 127 + "1"  # 255 characters, 128 labels: the longest prefix a handle may have
ADMIN = ValueReference("88.100/ADMIN", 300)


@contextmanager
def statements(store: IdentifierStore) -> Iterator[list[str]]:
    """The queries the store's engine executes inside the block (not BEGIN and the like)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
            seen.append(sql)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


@pytest.mark.parametrize("handle", [
    f"{DEEP}/x",  # neither served nor delegated
    f"88.100.5.{'1.' * 122}1/x",  # deep below a served prefix
    f"0.NA/{DEEP}",  # the prefix record of a deep prefix
    f"0.NA/88.100.{'7.' * 120}7",
])
def test_any_name_costs_one_statement(store: IdentifierStore, handle: str) -> None:
    bootstrap_prefix(store, "88.100", "s3cret", SITE)
    with statements(store) as seen, suppress(NotResponsible):
        locate(store, {"88.100"}, handle)
    assert len(seen) <= 1, f"{len(seen)} queries for one request"


def test_a_served_handle_costs_no_statement(store: IdentifierStore) -> None:
    with statements(store) as seen:
        assert locate(store, {"88.100.5"}, "88.100.5/PUMP-1") == Local("88.100.5")
    assert seen == []


def test_answers_are_those_of_the_prefix_walk(store: IdentifierStore) -> None:
    """The longest served or delegated prefix wins; only public HS_SITE / HS_SERV values
    delegate; prefix records are answered where they are held, else by the parent."""
    bootstrap_prefix(store, "88.100", "s3cret", SITE)
    store.create_handle(prefix_handle("88.100.5"), [site_value(OTHER)])
    store.create_handle(prefix_handle("88.100.5.7.3"), [site_value(OTHER)])
    hidden = HandleValue(1, "HS_SITE", site_value(OTHER).data,
                         permissions=int(Permission.ADMIN_READ | Permission.ADMIN_WRITE))
    store.create_handle(prefix_handle("88.100.6"), [hidden])
    store.create_handle(prefix_handle("88.100.9"), [HandleValue(2, "URL", b"https://x")])
    served = {"88.100", "88.100.5.7"}

    def where(handle: str) -> Local | Referral:
        return locate(store, served, handle)

    assert where("88.100/X") == Local("88.100")
    assert where("88.100.5/X") == Referral("88.100.5", (site_value(OTHER),))
    assert where("88.100.5.1.2/X") == Referral("88.100.5", (site_value(OTHER),))
    assert where("88.100.5.7/X") == Local("88.100.5.7")  # served, longer than the delegation
    assert where("88.100.5.7.3.1/X") == Referral("88.100.5.7.3", (site_value(OTHER),))
    assert where("88.100.6/X") == Local("88.100")  # a delegation nobody may read is none
    assert where("88.100.9/X") == Local("88.100")  # a record without HS_SITE is none
    assert where("0.NA/88.100.5") == Local("0.NA")  # held here
    assert where("0.na/88.100.5.7.3") == Local("0.NA")
    assert where("0.NA/88.100.4") == Local("88.100")  # not held: the parent answers
    assert where("0.NA/88.100.5.2") == Referral("88.100.5", (site_value(OTHER),))
    with pytest.raises(NotResponsible):
        where("89/X")
    with pytest.raises(NotResponsible):
        where("0.NA/89")


def test_prefixes_deeper_than_the_delegation_depth(store: IdentifierStore) -> None:
    """Records of prefixes deeper than MAX_DELEGATION_DEPTH labels are not looked for (and
    cannot be registered as delegations); deep served prefixes are still served."""
    bootstrap_prefix(store, "88.100", "s3cret", SITE)
    deepest = "88.100" + ".1" * (MAX_DELEGATION_DEPTH - 2)  # 16 labels: delegable
    too_deep = f"{deepest}.1"
    store.create_handle(prefix_handle(deepest), [site_value(OTHER)])
    store.create_handle(prefix_handle(too_deep), [site_value(OTHER)])
    assert locate(store, {"88.100"}, f"{too_deep}.5/X") == Referral(deepest, (site_value(OTHER),))
    served_deep = f"{too_deep}.2.2"
    assert locate(store, {"88.100", served_deep}, f"{served_deep}.3/X") == Local(served_deep)
    assert locate(store, {"88.100"}, f"0.NA/{too_deep}") == Local("0.NA")  # held here
    with pytest.raises(ConfigError, match="labels"):
        register_delegation(store, "88.100", too_deep, [OTHER])
    register_delegation(store, "88.100", deepest, [OTHER])


def test_a_service_handle_delegation_costs_one_more_read(store: IdentifierStore) -> None:
    bootstrap_prefix(store, "88.100", "s3cret", SITE)
    register_service(store, "88.100/SERVICE", [OTHER], ADMIN)
    register_service_delegation(store, "88.100", "88.100.5", "88.100/SERVICE")
    with statements(store) as seen:
        found = locate(store, {"88.100"}, f"88.100.5.{'2.' * 100}2/x")
    assert found == Referral("88.100.5", (site_value(OTHER),))
    assert len(seen) == 2


def test_the_service_locates_as_the_native_and_rest_paths_do(store: IdentifierStore) -> None:
    """:meth:`IdentifierService.locate` is what the native handler and the REST API call."""
    bootstrap_prefix(store, "88.100", "s3cret", SITE)
    service = IdentifierService(store, ["88.100"])
    with statements(store) as seen, pytest.raises(NotResponsible):
        service.locate(f"{DEEP}/x")
    assert len(seen) == 1


def test_held_records_bounds_its_names(store: IdentifierStore) -> None:
    assert held_records(store, []) == {}
    with pytest.raises(InvalidInput, match="at most"):
        held_records(store, [f"0.NA/{i}" for i in range(500)])


# Finding 9: UDP amplification

MEDIUM = {"88.100.5/MEDIUM": (HandleValue(1, "DESC", b"m" * 300),)}  # one datagram, ~400 B
BIG = {"88.100.5/BIG": tuple(HandleValue(i, "DESC", b"x" * 400) for i in range(1, 11))}
SMALL = {"88.100.5/S": (HandleValue(1, "URL", b"https://plant.example/s"),)}


def _resolver(msg: Message, peer: Peer) -> list[Message]:
    body = msg.body
    assert isinstance(body, ResolutionRequest)
    values = {**SMALL, **MEDIUM, **BIG}.get(body.handle)
    if values is None:
        reply = ErrorResponse(OpCode.RESOLUTION, ResponseCode.HANDLE_NOT_FOUND, "no such handle")
        return [make_response(msg, reply, now=0)]
    return [make_response(msg, ResolutionResponse(body.handle, values), now=0)]


def _exchange(port: int, data: bytes, wait: float = 0.4) -> list[bytes]:
    """Every datagram the server sends back to one request within ``wait`` seconds."""
    got: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(data, ("127.0.0.1", port))
        try:
            while True:
                got.append(s.recv(65_536))
        except TimeoutError:
            return got


@pytest.mark.parametrize("handle", ["88.100.5/MEDIUM", "88.100.5/BIG"])
def test_udp_answers_stay_within_four_times_the_request(handle: str) -> None:
    async def scenario() -> None:
        async with NativeServer(_resolver, udp_port=0, tcp_port=0, udp_grace=None) as server:
            data = encode_message(resolution_request(handle))
            assert len(data) < 80
            got = await asyncio.to_thread(_exchange, server.udp_port, data)
            assert sum(map(len, got)) <= 4 * len(data)
            assert len(got) == 1 and is_truncation_notice(got[0])
            assert got[0][8:12] == data[8:12]  # the request's id
            assert server.udp_stats.truncated == 1
            # A small answer is sent whole.
            small = encode_message(resolution_request("88.100.5/S"))
            whole = await asyncio.to_thread(_exchange, server.udp_port, small)
            assert len(whole) == 1 and not is_truncation_notice(whole[0])
            assert len(whole[0]) <= 4 * len(small)

    asyncio.run(scenario())


def test_a_truncation_notice_is_never_answered() -> None:
    """A notice is a response: answering it (with a PROTOCOL_ERROR over the budget, so with
    a notice) would let two nodes, or a node and its own forged address, bounce notices for
    ever."""
    async def scenario() -> None:
        async with NativeServer(_resolver, udp_port=0, tcp_port=0, udp_grace=None) as server:
            reply = encode_message(make_response(
                resolution_request("88.100.5/BIG"),
                ResolutionResponse("88.100.5/BIG", BIG["88.100.5/BIG"]), now=0))
            notice = truncation_notice(reply)
            assert await asyncio.to_thread(_exchange, server.udp_port, notice) == []
            assert server.udp_stats.malformed == 1

    asyncio.run(scenario())


def test_the_client_asks_over_tcp_on_a_truncation_notice() -> None:
    async def scenario() -> None:
        async with NativeServer(_resolver, udp_port=0, tcp_port=0, udp_grace=None) as server:
            where = Server("127.0.0.1", server.udp_port, server.tcp_port)
            # The notice ends the UDP exchange: no waiting out a 30-second timeout.
            udp = await asyncio.wait_for(
                request_udp(resolution_request("88.100.5/MEDIUM"), where, timeout=30), 10)
            assert udp is None
            full = await asyncio.wait_for(
                request(resolution_request("88.100.5/MEDIUM"), where, timeout=30), 10)
            assert isinstance(full.body, ResolutionResponse)
            assert full.body.values == MEDIUM["88.100.5/MEDIUM"]

    asyncio.run(scenario())


def test_the_fast_path_keeps_the_budget_too(tmp_path: Path) -> None:
    database = tmp_path / "ids.sqlite"
    with IdentifierStore.open(f"sqlite:///{database}") as ids:
        bootstrap_prefix(ids, "88.100.5", "s3cret", SITE)
        ids.create_handle("88.100.5/MEDIUM", MEDIUM["88.100.5/MEDIUM"])
        ids.create_handle("88.100.5/S", SMALL["88.100.5/S"])
    fast = FastResolver(database, {"88.100.5"})

    def nothing(msg: Message, peer: Peer) -> list[Message]:
        raise AssertionError("the fast path answers these")

    async def scenario() -> None:
        async with NativeServer(nothing, udp_port=0, tcp_port=0, fast=fast,
                                udp_grace=None) as server:
            data = encode_message(resolution_request("88.100.5/MEDIUM"))
            got = await asyncio.to_thread(_exchange, server.udp_port, data)
            assert len(got) == 1 and is_truncation_notice(got[0])
            small = encode_message(resolution_request("88.100.5/S"))
            whole = await asyncio.to_thread(_exchange, server.udp_port, small)
            assert len(whole) == 1 and not is_truncation_notice(whole[0])

    try:
        asyncio.run(scenario())
    finally:
        fast.close()


def test_a_truncation_notice_is_an_envelope_alone() -> None:
    reply = encode_message(make_response(resolution_request("88.100.5/BIG"), ResolutionResponse(
        "88.100.5/BIG", BIG["88.100.5/BIG"]), now=0))
    notice = truncation_notice(reply)
    assert len(notice) == ENVELOPE_SIZE and is_truncation_notice(notice)
    assert int.from_bytes(notice[16:20], "big") == len(reply) - ENVELOPE_SIZE
    assert not is_truncation_notice(reply[:ENVELOPE_SIZE])  # no TC: a plain envelope


# Property: the one-statement locate answers as the walk over every ancestor did.

_LABELS = st.sampled_from(["88", "100", "5", "7", "1", "A", "b"])
_PREFIXES = st.lists(_LABELS, min_size=1, max_size=40).map(".".join).filter(
    lambda p: len(p) <= 255)


def _walk(ids: IdentifierStore, served: set[str], handle: str) -> Local | Referral:
    """The old locate: one lookup per ancestor, longest first (within the delegation depth,
    or served)."""
    name, prefix = canonical_handle(handle)
    if prefix == "0.NA":
        if ids.exists(name):
            return Local("0.NA")
        walk = ancestors(prefix_key(name.partition("/")[2]))[1:]
    else:
        walk = ancestors(prefix)
    for candidate in walk:
        if candidate in served:
            return Local(candidate)
        if candidate.count(".") < MAX_DELEGATION_DEPTH:
            referral = delegation(ids, candidate)
            if referral is not None:
                return referral
    raise NotResponsible(name)


@pytest.fixture(scope="module")
def delegating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentifierStore]:
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'ids.sqlite'}"
    with IdentifierStore.open(url) as ids:
        bootstrap_prefix(ids, "88.100", "s3cret", SITE)
        for child in ("88.100.5", "88.100.5.7.1", "88.100.A", "7.1", "1.1.1.1.1.1.1.1"):
            ids.create_handle(prefix_handle(child), [site_value(OTHER)])
        yield ids


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=_PREFIXES, record=st.booleans(), served=st.sets(_PREFIXES, max_size=3))
def test_locate_answers_as_the_walk(delegating: IdentifierStore, prefix: str, record: bool,
                                    served: set[str]) -> None:
    handle = f"0.NA/{prefix}" if record else f"{prefix}/x"
    served = {prefix_key(p) for p in served} | {"88.100"}
    try:
        expected: Local | Referral | None = _walk(delegating, served, handle)
    except NotResponsible:
        expected = None
    with statements(delegating) as seen:
        try:
            got: Local | Referral | None = locate(delegating, served, handle)
        except NotResponsible:
            got = None
    assert got == expected
    assert len(seen) <= 1
