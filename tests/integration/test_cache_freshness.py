"""A recursing node drops cached answers when the responsible node changes the handles: the
change feed (``GET /api/changes``) and the follower, between real nodes over UDP, TCP and HTTP.

national (88, recursive, follows change feeds every 0.1 s) delegates 88.100.5 straight to an
enterprise node; values carry a TTL of a day, so only the feed can make the national node see
a change within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from millnet.connectivity.broker import free_port
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.cache import ResolverCache, cache_key, change_digest
from millnet.identifiers.hierarchy.client import Server, request, resolution_request
from millnet.identifiers.http.changes import change_feed
from millnet.idnode import IdServerOptions, LiveIdNode, identifier_node
from millnet.protocols.handle import HandleValue, Message, ResolutionResponse, ResponseCode

DAY = 86_400
URL_A = HandleValue(1, "URL", b"https://plant.example/pumps/1", ttl=DAY)
URL_B = HandleValue(1, "URL", b"https://plant.example/pumps/1-moved", ttl=DAY)


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _opts(tmp_path: Path, name: str, prefix: str, **more: object) -> IdServerOptions:
    secret = tmp_path / f"{name}.secret"
    secret.write_text(f"{name}-admin-secret\n")
    return IdServerOptions(prefix, tmp_path / name, secret, "127.0.0.1", free_port(),
                           free_port(), 0, **more)  # type: ignore[arg-type]


async def _resolve(node: LiveIdNode, handle: str) -> Message:
    return await request(resolution_request(handle, recursive=True),
                         Server("127.0.0.1", node.udp_port, node.tcp_port))


def _data(answer: Message) -> bytes | None:
    body = answer.body
    return body.values[0].data if isinstance(body, ResolutionResponse) else None


def test_the_national_node_sees_enterprise_changes_within_the_poll_interval(
        tmp_path: Path) -> None:
    enterprise_opts = _opts(tmp_path, "enterprise", "88.100.5")

    async def scenario() -> None:
        async with identifier_node(enterprise_opts) as enterprise:
            where = f"127.0.0.1:{enterprise.udp_port}/{enterprise.tcp_port}"
            national_opts = _opts(tmp_path, "national", "88", role="national",
                                  recursive=True, change_interval=0.1,
                                  delegates=(("88.100.5", (where,)),))
            store = enterprise.store
            await asyncio.to_thread(store.create_handle, "88.100.5/PUMP-1", [URL_A])
            async with identifier_node(national_opts) as national:
                handler_cache = _cache_of(national)
                assert _data(await _resolve(national, "88.100.5/PUMP-1")) == URL_A.data
                # The first poll learns the feed position (and drops what was cached before).
                await _until(lambda: _true(handler_cache.get(
                    cache_key("88.100.5/PUMP-1")) is None), "the first poll")
                assert _data(await _resolve(national, "88.100.5/PUMP-1")) == URL_A.data
                await asyncio.sleep(0.3)  # polls with no change keep the entry
                assert handler_cache.get(cache_key("88.100.5/PUMP-1")) is not None

                await asyncio.to_thread(store.modify_values, "88.100.5/PUMP-1", [URL_B])
                await _until(lambda: _answers(national, "88.100.5/PUMP-1", URL_B.data),
                             "the changed value at the national node")

                # A negative answer goes too when the handle is created.
                nope = await _resolve(national, "88.100.5/NEW-1")
                assert nope.response_code == ResponseCode.HANDLE_NOT_FOUND
                await asyncio.to_thread(store.create_handle, "88.100.5/NEW-1", [URL_A])
                await _until(lambda: _answers(national, "88.100.5/NEW-1", URL_A.data),
                             "the new handle at the national node")

                # And a deleted handle stops resolving.
                await asyncio.to_thread(store.delete_handle, "88.100.5/NEW-1")
                await _until(lambda: _code(national, "88.100.5/NEW-1",
                                           ResponseCode.HANDLE_NOT_FOUND),
                             "the deletion at the national node")
                follower = national.follower
                assert follower is not None and follower.dropped >= 4

    asyncio.run(scenario())


def test_cached_answers_survive_an_outage_of_the_responsible_node(tmp_path: Path) -> None:
    enterprise_opts = _opts(tmp_path, "enterprise", "88.100.5")

    async def scenario() -> None:
        enterprise_ctx: Any = identifier_node(enterprise_opts)
        enterprise = await enterprise_ctx.__aenter__()
        try:
            await asyncio.to_thread(enterprise.store.create_handle, "88.100.5/PUMP-1", [URL_A])
            where = f"127.0.0.1:{enterprise.udp_port}/{enterprise.tcp_port}"
            national_opts = _opts(tmp_path, "national", "88", role="national",
                                  recursive=True, change_interval=0.1,
                                  delegates=(("88.100.5", (where,)),))
            async with identifier_node(national_opts) as national:
                cache = _cache_of(national)
                await _resolve(national, "88.100.5/PUMP-1")
                await _until(lambda: _true(cache.get(cache_key("88.100.5/PUMP-1")) is None),
                             "the first poll")
                await _resolve(national, "88.100.5/PUMP-1")
                await enterprise_ctx.__aexit__(None, None, None)
                enterprise_ctx = None
                await asyncio.sleep(0.5)  # several failed polls
                assert _data(await _resolve(national, "88.100.5/PUMP-1")) == URL_A.data
        finally:
            if enterprise_ctx is not None:
                await enterprise_ctx.__aexit__(None, None, None)

    asyncio.run(scenario())


def _cache_of(node: LiveIdNode) -> ResolverCache:
    cache = node.resolver_cache
    assert cache is not None
    return cache


async def _true(value: bool) -> bool:
    return value


async def _answers(node: LiveIdNode, handle: str, data: bytes) -> bool:
    return _data(await _resolve(node, handle)) == data


async def _code(node: LiveIdNode, handle: str, code: int) -> bool:
    return (await _resolve(node, handle)).response_code == code


def test_the_change_feed(tmp_path: Path) -> None:
    opts = _opts(tmp_path, "enterprise", "88.100.5")
    a, b = change_digest("88.100.5/A"), change_digest("88.100.5/B")

    async def scenario() -> None:
        async with identifier_node(opts) as node, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.http_port}") as http:
            now = (await http.get("/api/changes")).json()
            assert now == {"responseCode": 1, "next": now["next"]}
            position = now["next"]
            for name in ("88.100.5/A", "88.100.5/B"):
                await asyncio.to_thread(node.store.create_handle, name, [URL_A])
            await asyncio.to_thread(node.store.modify_values, "88.100.5/A", [URL_B])

            async def ask(digests: list[str], **more: object) -> Any:
                return (await http.post("/api/changes", json={
                    "since": position, "digests": digests, **more})).json()

            page = await ask([a, b, change_digest("88.100.5/NEVER")])
            assert page["changes"] == [a, b]  # one digest per handle asked about
            assert page["next"] == position + 3 and not page["more"] and not page["reset"]
            assert page["others"] == 0
            only_a = await ask([a])
            assert only_a["changes"] == [a] and only_a["others"] == 1
            assert b not in str(only_a) and "88.100.5/A" not in str(only_a)
            two = await ask([a, b], limit=1)
            assert two["more"] and two["next"] == position + 1 and two["changes"] == [a]
            ahead = await ask([], since=position + 99)
            assert ahead["reset"]  # a position this log never reached: a replaced store
            for bad, field in (({"since": "x", "digests": []}, "since"),
                               ({"since": 0, "digests": ["d"] * 10_001}, "digests"),
                               ({"since": 0}, "digests")):
                answer = await http.post("/api/changes", json=bad)
                assert answer.status_code == 400 and field in answer.json()["message"]

    asyncio.run(scenario())


def test_a_trimmed_log_makes_the_feed_say_reset(tmp_path: Path) -> None:
    with IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}") as store:
        for i in range(5):
            store.create_handle(f"88.100.5/H{i}", [URL_A])
        assert change_feed(store, 0, 10)["changes"][0] == change_digest("88.100.5/H0")
        store.trim_txns(2)
        assert change_feed(store, 0, 10)["reset"]
        assert not change_feed(store, 3, 10)["reset"]
        assert change_feed(store, 3, 10)["changes"] == [change_digest("88.100.5/H3"),
                                                         change_digest("88.100.5/H4")]


@pytest.mark.parametrize("interval", [0.0])
def test_following_can_be_turned_off(tmp_path: Path, interval: float) -> None:
    opts = _opts(tmp_path, "national", "88", role="national", recursive=True,
                 change_interval=interval)

    async def scenario() -> None:
        async with identifier_node(opts, http=False) as node:
            assert node.resolver_cache is not None
            assert node.follower is None

    asyncio.run(scenario())


def test_a_bad_feed_does_not_stop_following_the_others() -> None:
    """Found by review: a page with ``"next": null`` killed the polling task, so no server was
    followed any more. Real HTTP servers: one serves garbage, one redirects, one a real feed."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from millnet.identifiers.hierarchy.freshness import ChangeFollower
    from tests.support.webserver import ThreadedServer

    changed = {"now": False}

    async def bad(request: Request) -> Response:
        return JSONResponse({"changes": [], "next": None})

    async def redirect(request: Request) -> Response:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/")

    async def good(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"next": 8 if changed["now"] else 7})
        asked = (await request.json())["digests"]
        news = [d for d in [change_digest("88.100.7/B")] if d in asked]
        return JSONResponse({"changes": news, "next": 8, "more": False, "reset": False,
                             "others": 0})

    def app(endpoint: Callable[[Request], Awaitable[Response]]) -> Starlette:
        return Starlette(routes=[Route("/api/changes", endpoint, methods=["GET", "POST"])])

    async def scenario(urls: dict[Server, str]) -> None:
        cache = ResolverCache()
        follower = ChangeFollower(cache, interval=0.05)

        async def discover(server: Server) -> str | None:  # GET_SITEINFO is tested above
            return urls[server]

        follower._discover = discover  # type: ignore[method-assign]
        async with asyncio.TaskGroup() as tg:
            polling = tg.create_task(follower.run())
            for n, server in enumerate(urls):
                cache.put_values(cache_key(f"88.100.{5 + n}/B"), [URL_A], source=server)
                follower.watch(server)
            await _until(lambda: _true(follower.polls >= 6), "polls of every server")
            assert cache.get(cache_key("88.100.7/B")) is None  # dropped at the first poll
            cache.put_values(cache_key("88.100.7/B"), [URL_A], source=list(urls)[2])
            changed["now"] = True
            await _until(lambda: _true(cache.get(cache_key("88.100.7/B")) is None),
                         "the good server's change, after the bad ones")
            polling.cancel()

    with ThreadedServer(app(bad)) as s1, ThreadedServer(app(redirect)) as s2, \
            ThreadedServer(app(good)) as s3:
        servers = [Server("127.0.0.1", 1000 + i, 1000 + i) for i in range(3)]
        asyncio.run(scenario({servers[0]: f"{s1.url}/api/changes",
                              servers[1]: f"{s2.url}/api/changes",
                              servers[2]: f"{s3.url}/api/changes"}))
