"""Administrative work never holds the event loop that answers resolutions (issue 10).

A write waits for SQLite's write lock up to the busy timeout (10 s). It used to wait on the
event loop, and every UDP resolution of the node waited with it. Here another connection holds
the lock for real (``BEGIN IMMEDIATE`` on the node's database file) while an administrator's
create is pending: resolutions from another client are answered all along, and the create
completes once the lock is released. Beyond the offload's bound, SERVER_BUSY (429 over HTTP)
at once, rather than a queue without limit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from millnet.connectivity.broker import free_port
from millnet.identifiers.core.delegation import bootstrap_prefix
from millnet.identifiers.core.fastpath import sqlite_path
from millnet.identifiers.core.offload import Busy, Offload
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import (
    Server,
    admin_request,
    request,
    request_udp,
    resolution_request,
)
from millnet.identifiers.native.handler import AdminBody, NativeHandler
from millnet.identifiers.wire.transport import TcpPeer
from millnet.idnode import IdServerOptions, identifier_node
from millnet.protocols.handle import (
    Challenge,
    CreateHandleRequest,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    HandleValue,
    Header,
    ListHandlesRequest,
    ListHandlesResponse,
    Message,
    PasswordLoginRequest,
    ResolutionResponse,
    ResponseCode,
    SiteInfo,
)
from millnet.protocols.handle.codec import Envelope, decode_message, encode_message

SECRET = "enterprise-admin-secret"
URL = HandleValue(1, "URL", b"https://plant.example/pumps/1")


def _opts(tmp_path: Path) -> IdServerOptions:
    secret = tmp_path / "admin.secret"
    secret.write_text(f"{SECRET}\n")
    return IdServerOptions("88.100.5", tmp_path / "node", secret, "127.0.0.1", free_port(),
                           free_port(), 0)


@contextlib.contextmanager
def write_lock(opts: IdServerOptions) -> Iterator[sqlite3.Connection]:
    """The database's write lock, held by a connection of our own until the block ends."""
    path = sqlite_path(opts.database_url)
    assert path is not None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def _admin(body: AdminBody, server: Server, timeout: float = 5) -> Message:
    return await admin_request(body, server, key_handle="88.100.5/ADMIN", key_index=300,
                               secret=SECRET, timeout=timeout)


async def _until_pending(offload: Offload | None, count: int) -> None:
    assert offload is not None
    for _ in range(500):
        if offload.pending >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{offload.pending} jobs pending, not {count}")


async def _resolves(server: Server, handle: str) -> None:
    """A plain UDP resolution (the fast path), one the general path answers (a handle that
    does not exist) and GET_SITEINFO, each answered within a second, from a client of its
    own."""
    found = await request_udp(resolution_request(handle), server, timeout=1.0, attempts=1)
    assert found is not None and isinstance(found.body, ResolutionResponse), found
    missing = await request_udp(resolution_request("88.100.5/MISSING"), server, timeout=1.0,
                                attempts=1)
    assert missing is not None and missing.response_code == ResponseCode.HANDLE_NOT_FOUND
    site = await request_udp(Message(GetSiteInfoRequest(), Header(0), Envelope()), server,
                             timeout=1.0, attempts=1)
    assert site is not None and isinstance(site.body, GetSiteInfoResponse)


def test_resolutions_are_answered_while_a_write_waits_for_the_lock(tmp_path: Path) -> None:
    opts = _opts(tmp_path)

    async def scenario() -> None:
        async with identifier_node(opts) as node:
            server = Server("127.0.0.1", node.udp_port, node.tcp_port)
            made = await _admin(CreateHandleRequest("88.100.5/PUMP-1", (URL,)), server)
            assert made.response_code == ResponseCode.SUCCESS
            with write_lock(opts):
                create = asyncio.create_task(_admin(
                    CreateHandleRequest("88.100.5/PUMP-2", (URL,)), server, timeout=15))
                await _until_pending(node.offload, 1)  # the create waits in its thread
                loop = asyncio.get_running_loop()
                until, rounds = loop.time() + 1.0, 0
                while loop.time() < until:  # each answered within a second, for a second
                    asked = time.monotonic()
                    await _resolves(server, "88.100.5/PUMP-1")
                    assert time.monotonic() - asked < 1.0
                    rounds += 1
                assert rounds > 10
                assert not create.done()  # still waiting for the lock
                assert node.offload is not None and node.offload.pending == 1
            done = await asyncio.wait_for(create, 10)
            assert done.response_code == ResponseCode.SUCCESS, done
            answer = await request(resolution_request("88.100.5/PUMP-2"), server)
            assert isinstance(answer.body, ResolutionResponse)

    asyncio.run(scenario())


def test_beyond_the_bound_the_node_is_busy_at_once(tmp_path: Path) -> None:
    """One job at a time and none waiting: while a create waits for the lock, another
    administrator's request (native or HTTP) is refused at once, not queued, and resolutions
    go on."""
    opts = _opts(tmp_path)

    async def scenario() -> None:
        async with identifier_node(opts) as node, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.http_port}",
                auth=(quote("300:88.100.5/ADMIN"), SECRET)) as http:
            assert node.offload is not None
            node.offload.workers, node.offload.backlog = 1, 0  # the bound, made small
            server = Server("127.0.0.1", node.udp_port, node.tcp_port)
            with write_lock(opts):
                create = asyncio.create_task(_admin(
                    CreateHandleRequest("88.100.5/PUMP-2", (URL,)), server, timeout=15))
                await _until_pending(node.offload, 1)
                busy = await _admin(ListHandlesRequest("0.NA/88.100.5"), server)
                assert busy.response_code == ResponseCode.SERVER_BUSY, busy
                refused = await http.put("/api/handles/88.100.5/PUMP-3", json={
                    "values": [{"index": 1, "type": "URL", "data": "https://x.example/"}]})
                assert refused.status_code == 429, refused.text
                assert refused.headers["retry-after"] == "1"
                await _resolves(server, "88.100.5/ADMIN")
                assert node.offload.refused == 2
            assert (await asyncio.wait_for(create, 10)).response_code == ResponseCode.SUCCESS
            listed = await _admin(ListHandlesRequest("0.NA/88.100.5"), server)
            assert isinstance(listed.body, ListHandlesResponse)
            assert "88.100.5/PUMP-2" in listed.body.handles

    asyncio.run(scenario())


def test_the_offload_refuses_beyond_its_bound_and_closes() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wait() -> int:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
            return 1

        async with Offload(workers=1, backlog=1) as offload:
            first, second = offload.submit(wait), offload.submit(wait)
            with pytest.raises(Busy):
                offload.submit(wait)
            assert (offload.pending, offload.refused) == (2, 1)
            gate.set()
            assert await first + await second == 2
            assert offload.pending == 0
        with pytest.raises(Busy):  # closed
            offload.submit(wait)

    asyncio.run(scenario())


def test_a_login_checked_after_its_connection_closed_binds_nobody(tmp_path: Path) -> None:
    """The secret is checked in a thread; the connection may close meanwhile, and a new one
    may come from the same address and port: it must not find itself logged in."""
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    bootstrap_prefix(store, "88.100.5", SECRET, SiteInfo())
    handler = NativeHandler(IdentifierService(store, ["88.100.5"]), SiteInfo())
    peer = TcpPeer(("127.0.0.1", 40000))
    login = Message(PasswordLoginRequest("300:88.100.5/ADMIN", SECRET), Header(0), Envelope())

    async def scenario() -> None:
        async with handler.offload:
            pending = handler(login, peer)
            assert not isinstance(pending, list)  # checked off the loop
            handler.connection_closed(peer)
            again = TcpPeer(("127.0.0.1", 40000))
            [answer] = await pending
            assert answer.response_code == ResponseCode.AUTHEN_FAILED
            create = Message(CreateHandleRequest("88.100.5/X", (URL,)), Header(0), Envelope())
            made = handler(decode_message(encode_message(create)), again)
            assert isinstance(made, list) and isinstance(made[0].body, Challenge)
            # Kept open, the same login binds the connection.
            ok = handler(login, again)
            assert not isinstance(ok, list)
            [answer] = await ok
            assert answer.response_code == ResponseCode.SUCCESS

    try:
        asyncio.run(scenario())
    finally:
        store.close()
