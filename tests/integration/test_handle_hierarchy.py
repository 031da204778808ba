"""The national / secondary / enterprise hierarchy over real UDP and TCP sockets: referrals
down and up, recursion with a cache, the recursion limit and replica failover.

national (serves 88) delegates 88.100 -> secondary (serves 88.100) delegates 88.100.5 -> two
enterprise replicas (both serve 88.100.5, each with its own SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from millnet.identifiers.core.delegation import Referral, bootstrap_prefix
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.cache import ResolverCache
from millnet.identifiers.hierarchy.client import (
    Server,
    admin_request,
    next_request_id,
    request,
    resolution_request,
)
from millnet.identifiers.hierarchy.hierarchy import (
    Endpoint,
    register_delegation,
    register_service,
    register_service_delegation,
    servers_of,
    site_of,
)
from millnet.identifiers.hierarchy.resolver import RecursiveResolver, resolve_following
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.transport import NativeServer, Replies
from millnet.idnode import IdServerOptions, open_identifier_node
from millnet.protocols.handle import (
    AddValueRequest,
    Envelope,
    ErrorResponse,
    GenericResponse,
    HandleValue,
    Header,
    Message,
    OpFlag,
    ResolutionRequest,
    ResolutionResponse,
    ResponseCode,
    ServiceReferral,
    SiteInfo,
    ValueReference,
)

PUMP = HandleValue(1, "URL", b"https://plant.example/pumps/1", ttl=300)
SECRET = "s3cret-national"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    name: str
    prefix: str
    store: IdentifierStore
    handler: NativeHandler
    server: NativeServer
    seen: list[str] = field(default_factory=list)  # handles asked of this node
    running: bool = True

    @property
    def where(self) -> Server:
        return Server("127.0.0.1", self.server.udp_port, self.server.tcp_port)

    @property
    def site(self) -> SiteInfo:
        return site_of([Endpoint("127.0.0.1", self.server.udp_port, self.server.tcp_port)])

    def count(self, handle: str) -> int:
        return self.seen.count(handle)

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.server.__aexit__(None, None, None)


@asynccontextmanager
async def hierarchy(tmp_path: Path, clock: Clock, *,
                    max_recursion: int = 8) -> AsyncIterator[dict[str, Node]]:
    nodes: dict[str, Node] = {}

    async def start(name: str, prefix: str, recursive: bool) -> Node:
        store = IdentifierStore.open(f"sqlite:///{tmp_path / name}.sqlite")
        resolver = RecursiveResolver(ResolverCache(negative_ttl=60, clock=clock),
                                     max_recursion=max_recursion, udp_timeout=0.2,
                                     tcp_timeout=2.0) if recursive else None
        handler = NativeHandler(IdentifierService(store, [prefix]), SiteInfo(), clock,
                                resolver=resolver)
        seen: list[str] = []

        def counting(msg: Message, peer: tuple[str, int]) -> Replies:
            if isinstance(msg.body, ResolutionRequest):
                seen.append(msg.body.handle)
            return handler(msg, peer)

        server = NativeServer(counting, udp_port=0, tcp_port=0)
        await server.__aenter__()
        node = Node(name, prefix, store, handler, server, seen)
        bootstrap_prefix(store, prefix, SECRET if name == "national" else f"s3cret-{name}",
                         node.site, now=int(clock()))
        nodes[name] = node
        return node

    try:
        national = await start("national", "88", recursive=True)
        secondary = await start("secondary", "88.100", recursive=True)
        replicas = [await start(n, "88.100.5", recursive=False)
                    for n in ("enterprise", "enterprise2")]
        register_delegation(national.store, "88", "88.100", [secondary.site])
        both = site_of([Endpoint("127.0.0.1", r.server.udp_port, r.server.tcp_port)
                        for r in replicas])
        register_delegation(secondary.store, "88.100", "88.100.5", [both])
        secondary.handler.parent = national.site
        for replica in replicas:
            replica.handler.parent = secondary.site
            replica.store.create_handle("88.100.5/PUMP-1", [PUMP])
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()
            node.store.close()


async def ask(node: Node, handle: str, *, recursive: bool) -> Message:
    return await request(resolution_request(handle, recursive=recursive), node.where)


def test_iterative_chain_of_referrals(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            national, secondary = n["national"], n["secondary"]
            enterprise, enterprise2 = n["enterprise"], n["enterprise2"]
            # Down: national -> secondary -> the two replicas.
            first = await ask(national, "88.100.5/PUMP-1", recursive=False)
            assert isinstance(first.body, ServiceReferral)
            assert servers_of(first.body.values or ()) == [secondary.where]
            second = await ask(secondary, "88.100.5/PUMP-1", recursive=False)
            assert isinstance(second.body, ServiceReferral)
            assert servers_of(second.body.values or ()) == [enterprise.where, enterprise2.where]
            final = await ask(enterprise, "88.100.5/PUMP-1", recursive=False)
            assert isinstance(final.body, ResolutionResponse)
            assert final.body.values[0].data == PUMP.data
            # REC without recursion configured (the enterprise node) is a plain answer.
            assert (await ask(enterprise, "88.100.5/PUMP-1", recursive=True)).body == final.body

            # Up: an unknown prefix is referred to the parent, like DNS root hints.
            up = await ask(enterprise, "88.100.6/X", recursive=False)
            assert isinstance(up.body, ServiceReferral)
            assert servers_of(up.body.values or ()) == [secondary.where]
            assert (await ask(secondary, "88.100.6/X", recursive=False)).response_code \
                == ResponseCode.HANDLE_NOT_FOUND
            up2 = await ask(secondary, "88.200/X", recursive=False)
            assert isinstance(up2.body, ServiceReferral)
            assert servers_of(up2.body.values or ()) == [national.where]
            assert (await ask(national, "88.200/X", recursive=False)).response_code \
                == ResponseCode.HANDLE_NOT_FOUND
            # The national node has no parent: an unknown root is not its business.
            assert (await ask(national, "99.1/X", recursive=False)).response_code \
                == ResponseCode.SERVER_NOT_RESP
            # Prefix records are answered by the parent that holds them.
            record = await ask(secondary, "0.NA/88.100.5", recursive=False)
            assert isinstance(record.body, ResolutionResponse)

            # A client following referrals gets the answer from any node.
            for start in (national, secondary, enterprise):
                body = await resolve_following("88.100.5/PUMP-1", start.where)
                assert isinstance(body, ResolutionResponse), start.name
            body = await resolve_following("88.200/X", enterprise.where)
            assert isinstance(body, ErrorResponse)
            assert body.response_code == ResponseCode.HANDLE_NOT_FOUND

    asyncio.run(scenario())


def test_recursion_and_cache(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        async with hierarchy(tmp_path, clock) as n:
            national, secondary, enterprise = n["national"], n["secondary"], n["enterprise"]
            handle = "88.100.5/PUMP-1"
            answer = await ask(national, handle, recursive=True)
            assert isinstance(answer.body, ResolutionResponse)
            assert answer.body.handle == handle
            assert answer.body.values[0].data == PUMP.data
            assert (secondary.count(handle), enterprise.count(handle)) == (1, 1)

            # Cache hit: neither the secondary nor the enterprise node is asked again.
            again = await ask(national, handle, recursive=True)
            assert again.body == answer.body
            assert (secondary.count(handle), enterprise.count(handle)) == (1, 1)

            # The secondary recurses too (its own cache).
            from_secondary = await ask(secondary, handle, recursive=True)
            assert from_secondary.body == answer.body
            assert enterprise.count(handle) == 2
            # ...and resolves the enterprise's parent-referred names from below.
            up = await ask(enterprise, "88.200/X", recursive=False)
            assert isinstance(up.body, ServiceReferral)
            rec_up = await ask(secondary, "88.200/X", recursive=True)
            assert rec_up.response_code == ResponseCode.HANDLE_NOT_FOUND
            assert national.count("88.200/X") == 1

            # TTL expiry (300 s): the next resolution goes back to the enterprise node.
            clock.now += 299
            await ask(national, handle, recursive=True)
            assert enterprise.count(handle) == 2
            clock.now += 2
            await ask(national, handle, recursive=True)
            assert enterprise.count(handle) == 3

            # Negative cache: 60 s.
            for _ in range(2):
                nope = await ask(national, "88.100.5/NOPE", recursive=True)
                assert nope.response_code == ResponseCode.HANDLE_NOT_FOUND
            assert enterprise.count("88.100.5/NOPE") == 1
            clock.now += 61
            await ask(national, "88.100.5/NOPE", recursive=True)
            assert enterprise.count("88.100.5/NOPE") == 2

    asyncio.run(scenario())


def test_a_local_write_invalidates_the_cache(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            national, enterprise = n["national"], n["enterprise"]
            handle = "88.100.5/PUMP-1"
            await ask(national, handle, recursive=True)
            await ask(national, handle, recursive=True)
            assert enterprise.count(handle) == 1
            resolver = national.handler.resolver
            assert resolver is not None and resolver.cache is not None
            assert len(resolver.cache) == 1
            # The national admin changes the delegation record of 88.100 over the native
            # admin path: everything cached under 88.100 is dropped.
            done = await admin_request(
                AddValueRequest("0.NA/88.100", (HandleValue(50, "EMAIL", b"noc@example"),)),
                national.where, key_handle="88/ADMIN", key_index=300, secret=SECRET)
            assert isinstance(done.body, GenericResponse), done.body
            assert len(resolver.cache) == 0
            await ask(national, handle, recursive=True)
            assert enterprise.count(handle) == 2

    asyncio.run(scenario())


def test_recursion_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock(), max_recursion=1) as n:
            national, secondary = n["national"], n["secondary"]
            # Two referrals are needed from the national node; one is allowed.
            limited = await ask(national, "88.100.5/PUMP-1", recursive=True)
            assert limited.response_code == ResponseCode.RECUR_LIMIT_EXCEEDED
            # One hop is enough from the secondary node...
            ok = await ask(secondary, "88.100.5/PUMP-1", recursive=True)
            assert isinstance(ok.body, ResolutionResponse)
            # ...unless the client says the hop was already spent upstream.
            spent = Message(ResolutionRequest("88.100.5/OTHER"),
                            Header(int(OpFlag.REC), recursion_count=1),
                            Envelope(request_id=next_request_id()))
            answer = await request(spent, secondary.where)
            assert answer.response_code == ResponseCode.RECUR_LIMIT_EXCEEDED

    asyncio.run(scenario())


def test_replica_failover(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            national, enterprise, enterprise2 = n["national"], n["enterprise"], n["enterprise2"]
            await enterprise.stop()
            answer = await ask(national, "88.100.5/PUMP-1", recursive=True)
            assert isinstance(answer.body, ResolutionResponse)
            assert enterprise2.count("88.100.5/PUMP-1") == 1
            resolver = national.handler.resolver
            assert resolver is not None and resolver.stats.failovers >= 1
            # A client following referrals fails over the same way.
            body = await resolve_following("88.100.5/PUMP-1", n["secondary"].where)
            assert isinstance(body, ResolutionResponse)
            # With both replicas down the recursing node says so.
            await enterprise2.stop()
            down = await ask(national, "88.100.5/OTHER", recursive=True)
            assert down.response_code == ResponseCode.SERVER_NOT_RESP

    asyncio.run(scenario())


def test_cache_is_bounded_and_honours_absolute_ttls() -> None:
    from millnet.identifiers.hierarchy.cache import cache_key
    from millnet.protocols.handle import TTLType

    clock = Clock()
    cache = ResolverCache(max_entries=2, clock=clock)
    for name in ("88.100.5/A", "88.100.5/B"):
        cache.put_values(cache_key(name), [PUMP])
    assert cache.get(cache_key("88.100.5/A")) is not None  # A is now the most recent
    cache.put_values(cache_key("88.100.5/C"), [PUMP])
    assert cache.get(cache_key("88.100.5/B")) is None  # least recently used, dropped
    assert len(cache) == 2
    # Prefixes are case-insensitive in keys, suffixes are not.
    assert cache.get(cache_key("88.100.5/a")) is None
    assert cache.get(cache_key("88.100.5/A")) is not None
    # An absolute TTL is a Unix time; TTL 0 is not cached at all.
    until = HandleValue(1, "URL", b"x", ttl_type=TTLType.ABSOLUTE, ttl=int(clock.now) + 10)
    cache.put_values(cache_key("88.100.5/D"), [until, PUMP])
    clock.now += 11
    assert cache.get(cache_key("88.100.5/D")) is None
    cache.put_values(cache_key("88.100.5/E"), [HandleValue(1, "URL", b"x", ttl=0)])
    assert cache.get(cache_key("88.100.5/E")) is None
    # Invalidating a prefix record drops the prefix and its sub-prefixes only.
    cache.put_values(cache_key("88.100.5/F"), [PUMP])
    cache.put_values(cache_key("88.1000/G"), [PUMP])
    assert cache.invalidate("0.NA/88.100") == 1
    assert cache.get(cache_key("88.1000/G")) is not None


def test_delegation_through_a_service_handle(tmp_path: Path) -> None:
    """0.NA/88.100.5 names a service handle (HS_SERV) instead of sites: held by the referring
    node, the referral carries its sites; held elsewhere (the national node), the resolver
    resolves it where it was referred, which refers up, then follows the sites."""

    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            national, secondary = n["national"], n["secondary"]
            enterprise, enterprise2 = n["enterprise"], n["enterprise2"]
            sites = [site_of([Endpoint("127.0.0.1", r.server.udp_port, r.server.tcp_port)])
                     for r in (enterprise, enterprise2)]
            local = "88.100/SERV.enterprise"
            register_service(secondary.store, local, sites, ValueReference("88.100/ADMIN", 300))
            register_service_delegation(secondary.store, "88.100", "88.100.5", local)
            referral = await ask(secondary, "88.100.5/PUMP-1", recursive=False)
            assert isinstance(referral.body, ServiceReferral)
            assert {v.type for v in referral.body.values or ()} == {"HS_SITE"}
            assert servers_of(referral.body.values or ()) == [enterprise.where,
                                                             enterprise2.where]
            found = await resolve_following("88.100.5/PUMP-1", national.where)
            assert isinstance(found, ResolutionResponse)

            # The service handle lives on the national node: the referral names it (HS_SERV).
            remote = "88/SERV.88.100.5"
            register_service(national.store, remote, sites[1:], ValueReference("88/ADMIN", 300))
            register_service_delegation(secondary.store, "88.100", "88.100.5", remote)
            referral = await ask(secondary, "88.100.5/PUMP-1", recursive=False)
            assert isinstance(referral.body, ServiceReferral)
            assert [v.type for v in referral.body.values or ()] == ["HS_SERV"]
            enterprise2.seen.clear()
            found = await resolve_following("88.100.5/PUMP-1", secondary.where)
            assert isinstance(found, ResolutionResponse)
            assert enterprise2.count("88.100.5/PUMP-1") == 1  # the service's one server
            # The recursive secondary node follows it the same way.
            answer = await ask(national, "88.100.5/PUMP-1", recursive=True)
            assert isinstance(answer.body, ResolutionResponse)

    asyncio.run(scenario())


def test_id_serve_options_for_service_delegations(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-secondary\n")
    opts = IdServerOptions(
        "88.100", tmp_path / "node", secret, "127.0.0.1", 0, 0, 0, "secondary",
        services=(("88.100/SERV.A", ("10.0.0.5:2641", "10.0.0.6:2641")),),
        delegates_via=(("88.100.5", "88.100/SERV.A"), ("88.100.6", "88.100/SERV.A")))
    store, service, _ = open_identifier_node(opts)
    try:
        for child in ("88.100.5", "88.100.6"):
            where = service.locate(f"{child}/X")
            assert isinstance(where, Referral)
            assert [(s.host, s.udp_port) for s in servers_of(where.values)] == \
                [("10.0.0.5", 2641), ("10.0.0.6", 2641)]
        assert [v.type for v in store.get("0.NA/88.100.5", types=("HS_SERV",))] == ["HS_SERV"]
    finally:
        store.close()


def test_a_node_on_a_wildcard_address_advertises_where_it_is_reached(tmp_path: Path) -> None:
    import pytest

    from millnet.errors import ConfigError

    secret = tmp_path / "secret"
    secret.write_text("s3cret-enterprise\n")
    opts = IdServerOptions("88.100.5", tmp_path / "node", secret, "0.0.0.0", 2641, 2641, 8000)
    with pytest.raises(ConfigError, match="advertise"):
        opts.check()
    with pytest.raises(ConfigError, match="not an IP address"):
        IdServerOptions("88.100.5", tmp_path / "node", secret, "0.0.0.0", 2641, 2641, 8000,
                        advertise="ids.plant.example").check()
    store, _, site = open_identifier_node(
        IdServerOptions("88.100.5", tmp_path / "node", secret, "0.0.0.0", 2641, 2641, 8000,
                        advertise="10.1.2.3"))
    try:
        assert [str(s.ip) for s in site.servers] == ["10.1.2.3"]
        (record,) = servers_of(store.get("0.NA/88.100.5", types=("HS_SITE",)))
        assert (record.host, record.udp_port) == ("10.1.2.3", 2641)
    finally:
        store.close()


def test_a_hostile_node_cannot_make_a_resolution_fan_out() -> None:
    """Found by review: referrals made only of HS_SERV values branched at every level; one
    request made a recursive node send 5,265 with 8 values per referral. Now one resolution
    sends at most max_hops requests, and gives up after its deadline."""
    import time as clock

    from millnet.identifiers.core.delegation import site_value
    from millnet.protocols.handle import encode_serv, make_response

    seen: dict[str, int] = {}
    received = 0

    async def scenario() -> None:
        nonlocal received
        holder: dict[str, SiteInfo] = {}

        def hostile(msg: Message, peer: tuple[str, int]) -> list[Message]:
            nonlocal received
            received += 1
            body = msg.body
            assert isinstance(body, ResolutionRequest)
            first = seen.get(body.handle, 0) == 0 and body.handle != "77.1/ROOT"
            seen[body.handle] = seen.get(body.handle, 0) + 1
            values = (site_value(holder["site"]),) if first else tuple(
                HandleValue(i + 1, "HS_SERV", encode_serv(f"77.1/S{received}-{i}"))
                for i in range(8))
            return [make_response(msg, ServiceReferral(msg.opcode, body.handle, values),
                                  now=int(clock.time()))]

        async with NativeServer(hostile, udp_port=0, tcp_port=0) as server:
            holder["site"] = site_of([Endpoint("127.0.0.1", server.udp_port,
                                               server.tcp_port)])
            resolver = RecursiveResolver(ResolverCache(), max_hops=32, udp_timeout=0.2)
            answer = await resolver.resolve(ResolutionRequest("77.1/ROOT", (), ()), [
                Server("127.0.0.1", server.udp_port, server.tcp_port)])
            assert isinstance(answer, ErrorResponse)
            assert answer.response_code == ResponseCode.SERVER_NOT_RESP
            assert resolver.stats.hops <= 32
            slow = RecursiveResolver(ResolverCache(), deadline=0.3, udp_timeout=5)
            started = clock.monotonic()
            silent = Server("127.0.0.1", _silent_udp_port(), 0)
            late = await slow.resolve(ResolutionRequest("77.1/ROOT", (), ()), [silent])
            assert clock.monotonic() - started < 2
            assert isinstance(late, ErrorResponse) and "within" in late.message

    asyncio.run(scenario())
    assert received <= 40


def _silent_udp_port() -> int:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    _KEEP.append(sock)  # bound, never answering, until the test process ends
    return int(sock.getsockname()[1])


_KEEP: list[object] = []


def test_a_node_cannot_poison_the_cache_for_another_prefix(tmp_path: Path) -> None:
    """Found by review: a node delegated 88.9 named an HS_SERV handle of 88.100 and answered
    for it itself; the nested lookup's answer was cached for 88.100's handle."""
    import time as clock

    from millnet.identifiers.core.delegation import site_value
    from millnet.protocols.handle import decode_site, encode_serv, make_response

    target = "88.100/SERV"

    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            national, secondary = n["national"], n["secondary"]
            secondary.store.create_handle(target, [site_value(secondary.site, 1)])
            holder: dict[str, SiteInfo] = {}
            forged = site_value(site_of([Endpoint("10.66.66.66", 2641, 2641)]), 1)

            def evil(msg: Message, peer: tuple[str, int]) -> list[Message]:
                body = msg.body
                assert isinstance(body, ResolutionRequest)
                now = int(clock.time())
                if body.handle == target and msg.header.recursion_count <= 2:
                    return [make_response(msg, ServiceReferral(
                        msg.opcode, body.handle, (site_value(holder["site"]),)), now=now)]
                if body.handle == target:
                    long_lived = HandleValue(forged.index, forged.type, forged.data,
                                             ttl=10**9)
                    return [make_response(msg, ResolutionResponse(body.handle, (long_lived,)),
                                          now=now)]
                return [make_response(msg, ServiceReferral(msg.opcode, body.handle, (
                    HandleValue(1, "HS_SERV", encode_serv(target)),)), now=now)]

            async with NativeServer(evil, udp_port=0, tcp_port=0) as server:
                holder["site"] = site_of([Endpoint("127.0.0.1", server.udp_port,
                                                   server.tcp_port)])
                register_delegation(national.store, "88", "88.9", [holder["site"]])
                await ask(national, "88.9/ANYTHING", recursive=True)
                after = await request(resolution_request(target, types=("HS_SITE",)),
                                      national.where)
                assert isinstance(after.body, ResolutionResponse)
                addresses = [str(s.ip) for s in decode_site(after.body.values[0].data).servers]
                assert addresses == ["127.0.0.1"]

    asyncio.run(scenario())
