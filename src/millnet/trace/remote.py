"""The upstream trace of another enterprise's identifier, asked of that enterprise's node.

``locate`` finds the node's trace API for an identifier (configured peers, else the identifier
hierarchy: the composition root supplies it). The request carries this node's token, the depth
left and the hops left (each node takes one: a loop of nodes ends), and is bounded by
``timeout``; whatever goes wrong is an ``unreachable`` node in the tree, with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

Locate = Callable[[str], Awaitable[str | None]]


class HttpRemote:
    def __init__(self, locate: Locate, *, token: Callable[[str], str | None],
                 timeout: float = 3.0, client: httpx.AsyncClient | None = None) -> None:
        self._locate = locate
        self._token = token
        self._timeout = timeout
        self._client = client

    async def __call__(self, key: str, depth: int, hops: int) -> dict[str, Any] | None:
        try:
            url = await self._locate(key)
        except Exception as exc:  # noqa: BLE001 - any resolution failure is a marker
            return {"identifier": key, "status": "unreachable",
                    "error": f"resolution failed: {exc}"}
        if url is None:
            return {"identifier": key, "status": "unknown_node",
                    "error": "no trace API found for this identifier's prefix"}
        target = url.rstrip("/") + "/" + quote(key, safe="/")
        headers = {}
        token = self._token(key)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = {"direction": "up", "depth": str(max(depth, 0)), "hops": str(max(hops, 0))}
        if self._client is None:  # one pool of kept-alive connections, on the serving loop
            self._client = httpx.AsyncClient()
        try:
            reply = await self._client.get(target, params=params, headers=headers,
                                           timeout=self._timeout)
        except httpx.HTTPError as exc:
            return {"identifier": key, "status": "unreachable", "url": url,
                    "error": f"{type(exc).__name__}: {exc}"}
        if reply.status_code != 200:
            return {"identifier": key, "status": "unreachable", "url": url,
                    "error": f"HTTP {reply.status_code}"}
        try:
            answer: dict[str, Any] = reply.json()
        except ValueError:
            return {"identifier": key, "status": "unreachable", "url": url,
                    "error": "the answer is not JSON"}
        answer["remote"] = url
        return answer
