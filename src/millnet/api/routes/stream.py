"""Live samples by server push: ``GET /api/v1/stream/points?series=1,2`` as Server-Sent Events.

Authenticated like every route, with the ``Authorization`` header: the console reads the stream
with ``fetch()`` (EventSource cannot send headers, and a long-lived token never goes into a
URL, where proxies and logs keep it). Every series is checked against the caller's tenant once,
when the stream opens. Samples come from the node's :class:`~millnet.ingest.live.LiveFeed` (a
tap on the ingest pipeline, fed once per sealed batch); a watcher that reads too slowly loses
its oldest samples, and each event says how many were dropped so far.

Events::

    event: hello     data: {"series": [1, 2], "max_samples": 50000}
    event: samples   data: {"series_id": [...], "ts_ms": [...], "value": [...],
                            "quality": [...], "dropped": 0}
    : keep-alive     (a comment every 15 s without samples)

Left out of the OpenAPI document: a stream that never ends is no request/response operation
(the contract tests would wait on it forever); docs/console.md documents it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from millnet.api.auth import Viewer
from millnet.api.context import Ctx
from millnet.api.errors import error_response
from millnet.api.params import parse_series
from millnet.api.scope import check_series
from millnet.ingest.live import LiveFeed, Subscription, TooManyWatchers
from millnet.model import SampleBatch

router = APIRouter(tags=["telemetry"])

KEEPALIVE_S = 15.0
_encode = msgspec.json.Encoder().encode


def _event(name: str, body: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(body) + b"\n\n"


def _samples(batch: SampleBatch, dropped: int) -> bytes:
    # msgspec writes NaN (a gap, a stale source) as null.
    return _event("samples", {
        "series_id": batch.series_id.tolist(), "ts_ms": (batch.ts_ns / 1e6).tolist(),
        "value": batch.value.tolist(), "quality": batch.quality.tolist(), "dropped": dropped})


async def _events(feed: LiveFeed, sub: Subscription) -> AsyncIterator[bytes]:
    # Starlette cancels this generator when the client goes away: ``finally`` cleans up.
    try:
        yield _event("hello", {"series": sub.series_ids.tolist(),
                               "max_samples": sub.max_samples})
        while True:
            batch = await sub.next(KEEPALIVE_S)
            if batch is None:  # the node is stopping
                return
            yield _samples(batch, sub.dropped) if len(batch) else b": keep-alive\n\n"
    finally:
        feed.unsubscribe(sub)


@router.get("/stream/points", include_in_schema=False)
async def stream_points(
    request: Request, ctx: Ctx, caller: Viewer,
    series: Annotated[list[str] | None, Query()] = None,
) -> Response:
    feed: LiveFeed | None = getattr(request.app.state, "live", None)
    if feed is None:
        return error_response(404, "not_found", "this node has no live stream")
    ids = parse_series(series or [], ctx.limits.max_series)
    await run_in_threadpool(check_series, ctx, caller, ids)
    try:
        sub = feed.subscribe(ids)
    except TooManyWatchers as exc:
        response = error_response(503, "too_many_streams", str(exc))
        response.headers["Retry-After"] = "5"
        return response
    return StreamingResponse(
        _events(feed, sub), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
