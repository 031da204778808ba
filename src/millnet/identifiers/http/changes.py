"""The node side of cache freshness (:mod:`millnet.identifiers.hierarchy.freshness` is the
follower's): ``GET /api/changes``, the current position of the node's transaction log, and
``POST /api/changes`` with ``{"since": N, "limit": L, "digests": [...]}``, of the handles whose
change digest the asker sent, those changed after ``N`` (see the follower's module for the
protocol and why the feed names only what it is asked)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from millnet.errors import InvalidInput, MillnetError
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.cache import change_digest
from millnet.identifiers.hierarchy.freshness import DIGEST_CHARS, MAX_ASKED, PAGE
from millnet.identifiers.http.rest import error_response, read_json

MAX_QUESTION_BYTES = 1 << 20


def change_feed(store: IdentifierStore, since: int | None, limit: int,
                asked: Collection[str] | None = None) -> dict[str, Any]:
    """The page of the change feed after position ``since`` (None: the current position):
    the digests of the changed handles among ``asked`` (None: of all, for this node's own
    use), and how many ``others`` changed."""
    page = store.log_after(since, limit)
    digests = list(dict.fromkeys(change_digest(name) for _, name in page.changes))
    told = digests if asked is None else [d for d in digests if d in asked]
    return {"next": page.next, "more": page.more, "reset": page.reset, "changes": told,
            "others": len(digests) - len(told)}


def _integer(body: dict[str, Any], name: str, default: int | None, minimum: int) -> int:
    value = body.get(name, default)
    if type(value) is not int or value < minimum:
        raise InvalidInput(f"not an integer of at least {minimum}", name)
    return value


def _question(body: Any) -> tuple[int, int, frozenset[str]]:
    """(since, limit, digests) of a POST to the feed; InvalidInput naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", "body")
    since, limit = _integer(body, "since", None, 0), _integer(body, "limit", PAGE, 1)
    digests = body.get("digests")
    if not isinstance(digests, list) or len(digests) > MAX_ASKED or not all(
            isinstance(d, str) and len(d) <= DIGEST_CHARS for d in digests):
        raise InvalidInput(f"a list of at most {MAX_ASKED} change digests", "digests")
    return since, min(limit, 10 * PAGE), frozenset(digests)


def change_routes(store: IdentifierStore, base: str = "/api") -> list[Route]:
    """``{base}/changes``: the change feed, for anyone (it names only what it is asked)."""

    async def position(request: Request) -> Response:
        if request.scope["query_string"]:
            return error_response(InvalidInput(
                "ask for changes with POST and the digests of the handles you hold", "since"))
        body = await run_in_threadpool(change_feed, store, None, 1)
        return Response(json.dumps({"responseCode": 1, "next": body["next"]}),
                        media_type="application/json")

    async def changes(request: Request) -> Response:
        try:
            since, limit, asked = _question(await read_json(request, MAX_QUESTION_BYTES))
            body = await run_in_threadpool(change_feed, store, since, limit, asked)
        except MillnetError as exc:
            return error_response(exc)
        body["responseCode"] = 1
        return Response(json.dumps(body), media_type="application/json")

    return [Route(f"{base}/changes", position, methods=["GET"]),
            Route(f"{base}/changes", changes, methods=["POST"])]
