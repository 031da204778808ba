"""A mirror replicates its primary over HTTP: creates, changes and deletes arrive, restricted
values too; it refuses writes; it resumes from its saved position after a restart, keeps
answering while the primary is down, and catches up when it returns."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from millnet.connectivity.broker import free_port
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.core.errors import ReadOnlyMirror
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import Server, request, resolution_request
from millnet.identifiers.replication.replication import trim_log
from millnet.idnode import IdServerOptions, LiveIdNode, identifier_node
from millnet.protocols.handle import (
    AdminPermission,
    HandleValue,
    Permission,
    ResolutionResponse,
    ValueReference,
)

ADMIN = ValueReference("88.100.5/ADMIN", 300)
AUTH = ("300%3A88.100.5/ADMIN", "shared-admin-secret")  # the user name URL-encoded, as Handle
URL = HandleValue(1, "URL", b"https://plant.example/pumps/1")
NOTE = HandleValue(2, "NOTE", b"restricted", permissions=int(Permission.ADMIN_READ
                                                              | Permission.ADMIN_WRITE))


async def _until(check: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _opts(tmp_path: Path, name: str, port: int, http_port: int,
          mirror_of: str | None = None) -> IdServerOptions:
    secret = tmp_path / "admin.secret"
    secret.write_text("shared-admin-secret\n")
    return IdServerOptions("88.100.5", tmp_path / name, secret, "127.0.0.1", port, port,
                           http_port, mirror_of=mirror_of)


async def _write(node: LiveIdNode, fn: Callable[..., object], *args: object) -> None:
    await asyncio.to_thread(fn, ADMIN, *args)


def _stable_port() -> int:
    """A free TCP and UDP port below the kernel's ephemeral range: the primary restarts on its
    ports, and one from the ephemeral range could meanwhile be the source port of a
    connection (the mirror's pulls), making the restart fail with EADDRINUSE."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
              .split())
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def test_a_mirror_follows_its_primary(tmp_path: Path) -> None:
    p_port, p_http, m_port = _stable_port(), _stable_port(), free_port()
    primary_opts = _opts(tmp_path, "primary", p_port, p_http)
    mirror_opts = _opts(tmp_path, "mirror", m_port, 0, mirror_of=f"http://127.0.0.1:{p_http}")

    async def scenario() -> None:
        async with identifier_node(primary_opts) as primary:
            svc = primary.service
            await _write(primary, svc.create_handle, "88.100.5/PUMP-1", [URL, NOTE])
            await _write(primary, svc.create_many, [(f"88.100.5/LOT-{i}", [URL])
                                                    for i in range(300)])
            await _write(primary, svc.create_handle, "88.100.5/GONE", [URL])
            await _write(primary, svc.delete_handle, "88.100.5/GONE")
            async with identifier_node(mirror_opts) as mirror:
                assert mirror.mirror is not None
                store = mirror.store
                await _until(lambda: store.exists("88.100.5/LOT-299"), "the batch")
                assert store.get("88.100.5/PUMP-1") == primary.store.get("88.100.5/PUMP-1")
                assert not store.exists("88.100.5/GONE")
                # Changes after the first sync arrive too.
                await _write(primary, svc.modify_values, "88.100.5/PUMP-1",
                             [HandleValue(1, "URL", b"https://plant.example/moved")])
                await _write(primary, svc.delete_handle, "88.100.5/LOT-7")
                await _until(lambda: not store.exists("88.100.5/LOT-7"), "the delete")
                await _until(lambda: store.get("88.100.5/PUMP-1", indexes=[1])[0].data
                             == b"https://plant.example/moved", "the change")
                # The mirror answers resolutions itself, and refuses writes.
                where = Server("127.0.0.1", mirror.udp_port, mirror.tcp_port)
                answer = await request(resolution_request("88.100.5/PUMP-1"), where)
                assert isinstance(answer.body, ResolutionResponse)
                with pytest.raises(ReadOnlyMirror, match=r"mirrors http://127\.0\.0\.1"):
                    mirror.service.create_handle(ADMIN, "88.100.5/NEW", [URL])
                async with httpx.AsyncClient() as http:
                    refused = await http.put(
                        f"http://127.0.0.1:{mirror.http_port}/api/handles/88.100.5/NEW",
                        json={"values": [{"index": 1, "type": "URL", "data": "x"}]},
                        auth=AUTH)
                assert refused.json()["responseCode"] == 7
                position = mirror.mirror.stats.position
            # Restarted, the mirror resumes from its saved position: nothing re-applied.
            async with identifier_node(mirror_opts) as again:
                assert again.mirror is not None
                assert again.mirror.stats.position == position
                await _until(lambda: again.mirror is not None
                             and again.mirror.stats.pulls > 0, "a pull")
                assert again.mirror.stats.applied == 0
        # The primary is down: the mirror still answers, then catches up when it is back.
        async with identifier_node(mirror_opts) as mirror:
            assert mirror.mirror is not None
            await _until(lambda: mirror.mirror is not None
                         and mirror.mirror.stats.failures > 0, "a failed pull")
            where = Server("127.0.0.1", mirror.udp_port, mirror.tcp_port)
            answer = await request(resolution_request("88.100.5/LOT-1"), where)
            assert isinstance(answer.body, ResolutionResponse)
            async with identifier_node(primary_opts) as primary:
                await _write(primary, primary.service.create_handle, "88.100.5/LATE", [URL])
                await _until(lambda: mirror.store.exists("88.100.5/LATE"), "catching up")

    asyncio.run(scenario())


def test_replication_needs_the_prefix_admin(tmp_path: Path) -> None:
    opts = _opts(tmp_path, "primary", free_port(), 0)

    async def scenario() -> None:
        async with identifier_node(opts) as primary, httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{primary.http_port}/api/replication/txns?since=0"
            assert (await http.get(url)).status_code == 401
            wrong = await http.get(url, auth=("300%3A88.100.5/ADMIN", "not-the-secret"))
            assert wrong.status_code == 401
            ok = await http.get(url, auth=AUTH)
            assert ok.status_code == 200
            body = ok.json()
            assert body["txns"] and body["next"] >= len(body["txns"])
            bad = await http.get(url.replace("since=0", "since=-1"),
                                 auth=AUTH)
            assert bad.status_code == 400 and "since" in bad.json()["message"]
            # An auditor allowed to list handles, nothing more, must not read the log or the
            # dump: they carry the secret keys of stronger admins (found by review).
            store = primary.store
            await asyncio.to_thread(store.create_handle, "88.100.5/AUDITOR", [
                HandleValue(300, "HS_SECKEY", b"auditor-secret", permissions=NOTE.permissions)])
            await asyncio.to_thread(store.add_values, "0.NA/88.100.5", [admin_record_value(
                ValueReference("88.100.5/AUDITOR", 300), index=101,
                permissions=int(AdminPermission.LIST_HANDLES))])
            auditor = ("300%3A88.100.5/AUDITOR", "auditor-secret")
            listing = await http.get(f"http://127.0.0.1:{primary.http_port}/api/handles",
                                     params={"prefix": "88.100.5"}, auth=auditor)
            assert listing.status_code == 200  # the right it has
            for path in ("txns?since=0", "dump"):
                refused = await http.get(
                    f"http://127.0.0.1:{primary.http_port}/api/replication/{path}",
                    auth=auditor)
                assert refused.status_code == 403, refused.text
                assert "secret" not in refused.text.replace("auditor-secret", "")

    asyncio.run(scenario())


def test_a_mirror_behind_a_trimmed_log_takes_a_dump(tmp_path: Path) -> None:
    """The primary keeps 5 log rows; a new mirror (position 0) is behind them: it dumps every
    handle, drops what the primary no longer has, then follows the log again."""
    p_port, p_http, m_port = _stable_port(), _stable_port(), free_port()
    primary_opts = replace(_opts(tmp_path, "primary", p_port, p_http), log_keep=5,
                           log_trim_interval=0.05)
    mirror_opts = _opts(tmp_path, "mirror", m_port, 0, mirror_of=f"http://127.0.0.1:{p_http}")

    async def scenario() -> None:
        async with identifier_node(primary_opts) as primary:
            svc = primary.service
            await _write(primary, svc.create_many, [(f"88.100.5/LOT-{i}", [URL])
                                                    for i in range(1500)])
            await _write(primary, svc.delete_handle, "88.100.5/LOT-3")
            await _until(lambda: trim_log(primary.store, 5) == 0, "the trim")
            # A handle only the mirror has (say, from before a primary restore): dropped.
            store = IdentifierStore.open(
                f"sqlite:///{mirror_opts.data_dir / 'identifiers.sqlite'}")
            store.create_handle("88.100.5/STALE", [URL])
            store.close()
            async with identifier_node(mirror_opts) as mirror:
                assert mirror.mirror is not None
                follower = mirror.mirror
                await _until(lambda: follower.stats.resyncs == 1, "the dump")
                assert mirror.store.exists("88.100.5/LOT-1499")
                assert mirror.store.exists("88.100.5/ADMIN")
                assert not mirror.store.exists("88.100.5/LOT-3")
                assert not mirror.store.exists("88.100.5/STALE")
                # Then the log again.
                await _write(primary, svc.create_handle, "88.100.5/AFTER", [URL])
                await _until(lambda: mirror.store.exists("88.100.5/AFTER"), "the log")
                assert follower.stats.resyncs == 1

    asyncio.run(scenario())


def test_a_mirror_ahead_of_its_primary_takes_a_dump(tmp_path: Path) -> None:
    """Found by review: a mirror whose position was past the primary's whole log (a primary
    restored or replaced) waited there for ever."""
    from millnet.identifiers.replication.replication import changes_since

    with IdentifierStore.open(f"sqlite:///{tmp_path / 'p.sqlite'}") as store:
        store.create_handle("88.100.5/A", [URL])
        page = changes_since(store, 500, 100)
        assert page["reset"] and page["next"] == 1


def test_a_mirror_survives_bad_pages_and_refuses_redirects(tmp_path: Path) -> None:
    """Found by review: a page without "txns" ended the mirror's task silently, and a
    redirect received the prefix admin's Basic credentials."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from millnet.identifiers.replication.replication import Mirror
    from tests.support.webserver import ThreadedServer

    seen_auth: list[str] = []

    async def thief(request: Request) -> Response:
        seen_auth.append(request.headers.get("authorization", ""))
        return JSONResponse({"next": 0, "more": False, "txns": []})

    async def bad(request: Request) -> Response:
        return JSONResponse({"next": 1})  # no "txns"

    with ThreadedServer(Starlette(routes=[Route("/api/replication/txns", thief)])) as stolen:

        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"{stolen.url}/api/replication/txns")

        app = Starlette(routes=[Route("/bad/api/replication/txns", bad),
                                Route("/moved/api/replication/txns", redirect)])
        with ThreadedServer(app) as primary, \
                IdentifierStore.open(f"sqlite:///{tmp_path / 'm.sqlite'}") as store:
            moved = Mirror(store, f"{primary.url}/moved", ADMIN, b"the-secret", tmp_path,
                           "0.NA/88.100.5")
            assert moved.sync_once() is False  # the redirect is an error, not followed
            assert seen_auth == []

            async def scenario() -> None:
                mirror = Mirror(store, f"{primary.url}/bad", ADMIN, b"the-secret", tmp_path,
                                "0.NA/88.100.5", interval=0.05, max_backoff=0.1)
                task = asyncio.create_task(mirror.run())
                await _until(lambda: mirror.stats.failures >= 3, "failures counted")
                assert not task.done()  # still following
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            asyncio.run(scenario())
