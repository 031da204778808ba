"""The upstream traces of other enterprises' identifiers, asked of those enterprises' nodes.

``locate`` finds the node's trace API for an identifier (configured peers, else the identifier
hierarchy: the composition root supplies it). The identifiers of one level that belong to one
node go in one request (``POST <trace API>`` with their list), with this node's token, the depth
left and the hops left (each node takes one: a ring of nodes ends), bounded by ``timeout``;
whatever goes wrong is an ``unreachable`` tree per identifier, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Locate = Callable[[str], Awaitable[str | None]]


def _marker(key: str, status: str, error: str, url: str | None = None) -> dict[str, Any]:
    out = {"identifier": key, "status": status, "error": error}
    if url is not None:
        out["url"] = url
    return out


class HttpRemote:
    def __init__(self, locate: Locate, *, token: Callable[[str], str | None],
                 timeout: float = 3.0, client: httpx.AsyncClient | None = None) -> None:
        self._locate = locate
        self._token = token
        self._timeout = timeout
        self._client = client

    async def _where(self, key: str) -> str | dict[str, Any]:
        try:
            url = await self._locate(key)
        except Exception as exc:  # noqa: BLE001 - any resolution failure is a marker
            return _marker(key, "unreachable", f"resolution failed: {exc}")
        if url is None:
            return _marker(key, "unknown_node",
                           "no trace API found for this identifier's prefix")
        return url

    async def __call__(self, keys: list[str], depth: int,
                       hops: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        groups: dict[str, list[str]] = {}
        for key, where in zip(keys, await asyncio.gather(*(self._where(k) for k in keys)),
                              strict=True):
            if isinstance(where, dict):
                out[key] = where
            else:
                groups.setdefault(where, []).append(key)
        answers = await asyncio.gather(*(self._ask(url, group, depth, hops)
                                         for url, group in groups.items()))
        for answer in answers:
            out.update(answer)
        return out

    async def _ask(self, url: str, keys: list[str], depth: int,
                   hops: int) -> dict[str, dict[str, Any]]:
        headers = {}
        token = self._token(keys[0])
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = {"identifiers": keys, "depth": max(depth, 0), "hops": max(hops, 0)}
        if self._client is None:  # one pool of kept-alive connections, on the serving loop
            self._client = httpx.AsyncClient()
        try:
            reply = await self._client.post(url.rstrip("/"), json=body, headers=headers,
                                            timeout=self._timeout)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            return {k: _marker(k, "unreachable", error, url) for k in keys}
        if reply.status_code != 200:
            return {k: _marker(k, "unreachable", f"HTTP {reply.status_code}", url)
                    for k in keys}
        try:
            traces: dict[str, dict[str, Any]] = reply.json()["traces"]
        except (ValueError, KeyError, TypeError):
            return {k: _marker(k, "unreachable", "the answer is not a trace", url)
                    for k in keys}
        out = {}
        for key in keys:
            tree = traces.get(key)
            if isinstance(tree, dict):
                out[key] = {**tree, "remote": url}
            else:
                out[key] = _marker(key, "unreachable", "the answer left it out", url)
        return out
