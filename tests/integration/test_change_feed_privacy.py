"""The change feed tells nobody a handle name they did not have (issue 9, finding 7: its
public digests were unsalted SHA-256 of the names, so a dictionary gave most of them away
offline, bypassing LIST_HANDLES), while a recursing node still learns what changed among the
handles it holds. Real nodes over HTTP, a real follower."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from millnet.connectivity.broker import free_port
from millnet.identifiers.hierarchy import freshness
from millnet.identifiers.hierarchy.cache import ResolverCache, cache_key, change_digest
from millnet.identifiers.hierarchy.client import Server
from millnet.identifiers.hierarchy.freshness import ChangeFollower
from millnet.idnode import IdServerOptions, identifier_node
from millnet.protocols.handle import HandleValue

DAY = 86_400
URL = HandleValue(1, "URL", b"https://plant.example/", ttl=DAY)
MOVED = HandleValue(1, "URL", b"https://plant.example/moved", ttl=DAY)
#: what an attacker would try: the names a plant plausibly gives its pumps
DICTIONARY = [f"88.100.5/{kind}-{n}" for kind in ("PUMP", "VALVE", "MOTOR")
              for n in range(1, 101)]


def _opts(tmp_path: Path) -> IdServerOptions:
    secret = tmp_path / "admin.secret"
    secret.write_text("enterprise-admin-secret\n")
    return IdServerOptions("88.100.5", tmp_path / "node", secret, "127.0.0.1", free_port(),
                           free_port(), 0)


def test_an_anonymous_client_learns_no_name_from_the_feed(tmp_path: Path) -> None:
    made = DICTIONARY[::3]

    async def scenario() -> None:
        async with identifier_node(_opts(tmp_path)) as node, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.http_port}") as http:
            for name in made:
                await asyncio.to_thread(node.store.create_handle, name, [URL])
            seen = " ".join([
                (await http.get("/api/changes", params={"since": 0})).text,
                (await http.get("/api/changes")).text,
                (await http.post("/api/changes", json={"since": 0, "digests": []})).text,
                (await http.post("/api/changes", json={"since": 0, "limit": 10_000,
                                                       "digests": ["0" * 16]})).text,
            ])
            recovered = [n for n in DICTIONARY if change_digest(n) in seen or n in seen]
            assert recovered == []
            # Asking about a name is no more than resolving it: the answer names only it.
            asked = await http.post("/api/changes", json={
                "since": 0, "digests": [change_digest(made[0])]})
            assert asked.json()["changes"] == [change_digest(made[0])]
            assert asked.json()["others"] >= len(made) - 1

    asyncio.run(scenario())


def test_a_follower_asks_in_parts_and_drops_what_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More handles held than one question may carry: the follower asks in parts."""
    monkeypatch.setattr(freshness, "MAX_ASKED", 2)
    names = DICTIONARY[:5]

    async def scenario() -> None:
        async with identifier_node(_opts(tmp_path)) as node:
            for name in names:
                await asyncio.to_thread(node.store.create_handle, name, [URL])
            server = Server("127.0.0.1", node.udp_port, node.tcp_port)
            cache = ResolverCache()
            follower = ChangeFollower(cache)
            await follower.poll()  # nothing followed yet
            follower.watch(server)  # nothing runs follower.run(): polled by hand below
            await follower.poll()  # discovers the feed and its position
            for name in names:
                cache.put_values(cache_key(name), [URL], source=server)
            await follower.poll()
            assert len(cache) == len(names)  # nothing changed: all kept
            for name in names[1:4]:
                await asyncio.to_thread(node.store.modify_values, name, [MOVED])
            await follower.poll()
            assert [n for n in names if cache.get(cache_key(n)) is not None] == \
                [names[0], names[4]]

    asyncio.run(scenario())


def test_answers_nobody_asked_about_are_dropped_when_others_changed() -> None:
    source, elsewhere = Server("192.0.2.1", 2641, 2641), Server("192.0.2.2", 2641, 2641)
    cache = ResolverCache()
    cache.put_values(cache_key("88.100.5/A"), [URL], source=source)
    cache.put_values(cache_key("88.100.6/C"), [URL], source=elsewhere)
    asked = frozenset(cache.digests_from(source))
    assert asked == {change_digest("88.100.5/A")}
    ticket = cache.ticket()
    cache.put_values(cache_key("88.100.5/LATE"), [URL], source=source)  # while asking
    # A server cannot evict what another server gave, even naming its digest.
    assert cache.invalidate_changes(source, asked, [change_digest("88.100.6/C")],
                                    others=False) == 0
    assert cache.invalidate_changes(source, asked, [], others=False) == 0
    assert len(cache) == 3
    assert cache.invalidate_changes(source, asked, [change_digest("88.100.5/A")],
                                    others=True) == 2  # A, and LATE which nobody asked about
    cache.put_values(cache_key("88.100.5/B"), [URL], source=source, ticket=ticket)
    assert cache.get(cache_key("88.100.5/B")) is None  # on its way during the question
    assert cache.get(cache_key("88.100.6/C")) is not None
