"""The federation link over real HTTP: a parent under uvicorn, a child enrolling and running
its sender loop in this process (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import Header
from sqlalchemy import Connection

from millnet.errors import Conflict, PermissionDenied, Unauthenticated
from millnet.federation.enroll import enroll, issue_token
from millnet.federation.inbox import PeerInfo
from millnet.federation.links import FederationLinks
from millnet.protocols.federation import Message
from tests.support.federation import EVENT, effects, node, record_effect
from tests.support.webserver import ThreadedServer

FAST = {"heartbeat_s": 0.2, "retry_first_s": 0.05, "retry_max_s": 0.2,
        "max_request_bytes": 64 * 1024, "batch_max_bytes": 32 * 1024}


async def admin(authorization: str = Header("")) -> Any:
    """Stands in for the platform's ``require(Role.ADMIN)``: the caller it resolves."""
    if authorization == "Bearer node-admin":
        return SimpleNamespace(node_wide=True)
    if authorization == "Bearer tenant-admin":
        return SimpleNamespace(node_wide=False)
    raise Unauthenticated("no")


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[tuple[FederationLinks, str]]:
    links = node(tmp_path, "prov-32", "secondary", **FAST)
    links.inbox.register(EVENT, record_effect)
    with ThreadedServer(links.app(admin)) as server:
        yield links, server.url
    links.close()


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_tokens_need_a_node_wide_admin(parent: tuple[FederationLinks, str]) -> None:
    _, url = parent
    body = {"node_id": "plant-a", "role": "enterprise", "region": "320500", "sector": "C38",
            "prefix": "88.100.5"}
    with httpx.Client(base_url=url) as client:
        assert client.post("/api/v1/federation/tokens", json=body).status_code == 401
        denied = client.post("/api/v1/federation/tokens", json=body,
                             headers={"Authorization": "Bearer tenant-admin"})
        assert denied.status_code == 403
        bad = client.post("/api/v1/federation/tokens", json={**body, "region": "32"},
                          headers={"Authorization": "Bearer node-admin"})
        assert bad.status_code == 422
        made = client.post("/api/v1/federation/tokens", json=body,
                           headers={"Authorization": "Bearer node-admin"})
        assert made.status_code == 201 and made.json()["token"].startswith("mnf_")
        listed = client.get("/api/v1/federation/children",
                            headers={"Authorization": "Bearer node-admin"})
        assert listed.json() == []


def test_enroll_then_exchange_both_ways(parent: tuple[FederationLinks, str],
                                       tmp_path: Path) -> None:
    links, url = parent
    child = node(tmp_path, "plant-a", "enterprise", **FAST)
    got: list[dict[str, Any]] = []

    def advisory(conn: Connection, sender: PeerInfo, message: Message) -> None:
        got.append({"from": sender.node_id, **message.body})

    child.inbox.register("advisory", advisory)
    token = issue_token(links.engine, "plant-a", "enterprise", "320500", "C38", "88.100.5", 60)
    with pytest.raises(PermissionDenied):
        enroll(url, issue_token(links.engine, "plant-z", "enterprise", "320500", "C", "88.1",
                                60), child.identity, child.engine)
    pin = enroll(url, token, child.identity, child.engine)
    assert (pin.node_id, pin.public_key) == ("prov-32", links.identity.public_key_bytes)
    with pytest.raises(Conflict, match="already used"):
        enroll(url, token, child.identity, child.engine)
    assert child.outbox_up is not None
    outbox = child.outbox_up
    # Bodies of ~100 bytes against batches of 32 KiB: many exchanges.
    outbox.enqueue_many([(EVENT, {"id": f"e-{i}", "pad": "x" * 80}, None)
                         for i in range(1, 2001)])
    links.outbox_down("plant-a").enqueue("advisory", {"cve": "CVE-2026-0001"})

    async def scenario() -> None:
        task = asyncio.create_task(child.run())
        try:
            await until(lambda: len(effects(links.engine)) == 2000 and got)
            outbox.enqueue(EVENT, {"id": "late"})  # wakes the loop: no heartbeat wait
            await until(lambda: len(effects(links.engine)) == 2001, timeout=0.15 * 10)
            await until(lambda: links.outbox_down("plant-a").status().depth == 0)
            # The child reports its backlog as it was when it sent: 0 by the next heartbeat.
            await until(lambda: links.children.get("plant-a").up_depth == 0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
    assert got == [{"from": "prov-32", "cve": "CVE-2026-0001"}]
    assert child.link is not None and child.link.metrics.acked == 2001
    seen = links.children.get("plant-a")
    assert (seen.status, seen.applied_up, seen.up_depth) == ("healthy", 2001, 0)
    child.close()


def test_a_child_retries_while_the_parent_is_down(tmp_path: Path) -> None:
    links = node(tmp_path, "prov-32", "secondary", **FAST)
    links.inbox.register(EVENT, record_effect)
    child = node(tmp_path, "plant-a", "enterprise", **FAST)
    token = issue_token(links.engine, "plant-a", "enterprise", "320500", "C38", "88.100.5", 60)
    with ThreadedServer(links.app()) as server:
        enroll(server.url, token, child.identity, child.engine)
    assert child.outbox_up is not None and child.link is not None
    child.outbox_up.enqueue(EVENT, {"id": "while-down"})

    async def scenario() -> None:
        task = asyncio.create_task(child.run())
        assert child.link is not None
        await until(lambda: child.link is not None and child.link.metrics.retries >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert "ConnectError" in child.link.metrics.last_error
    assert child.outbox_up.status().depth == 1  # nothing lost while the parent was away
    child.close()
    links.close()


def test_oversized_and_garbage_exchanges_are_counted_rejections(
        parent: tuple[FederationLinks, str]) -> None:
    links, url = parent
    with httpx.Client(base_url=url) as client:
        big = client.post("/api/v1/federation/exchange", content=b"x" * (64 * 1024 + 1))
        junk = client.post("/api/v1/federation/exchange", content=b"\0" * 64 + b"[1,2]")
    assert (big.status_code, big.json()["error"]) == (413, "oversized")
    assert (junk.status_code, junk.json()["error"]) == (400, "malformed")
    assert links.service.rejections == {"oversized": 1, "malformed": 1}
