"""The hot read path: ``GET /api/v1/telemetry/last`` as a plain Starlette route.

FastAPI's dependency resolution and response validation cost more than the lookup itself, so this
route parses its query, authenticates and answers by hand, with a body encoded by msgspec. It
shares :func:`last_values_body` with the documented FastAPI twin in
:mod:`millnet.api.routes.telemetry`, which appears in the OpenAPI schema but is shadowed at run
time by this route. Authentication, tenant checks and errors are the same as everywhere else:
failures raise millnet errors, which the app's exception handlers answer.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from millnet.api.auth import Caller
from millnet.api.context import ApiContext
from millnet.api.params import parse_series, to_ms
from millnet.api.scope import check_series

_encode = msgspec.json.Encoder().encode


def last_values_body(ctx: ApiContext, caller: Caller, series: list[str]) -> bytes:
    """JSON of the current values of the requested series (blocking: registry and store)."""
    ids = parse_series(series, ctx.limits.max_last_series)
    check_series(ctx, caller, ids)
    found = ctx.store.last_values(ids)
    values: list[dict[str, Any]] = []
    missing: list[int] = []
    for sid in ids:
        last = found.get(sid)
        if last is None:
            missing.append(sid)
            continue
        values.append({
            "series_id": sid, "ts_ms": to_ms(last.ts_ns),
            "value": last.text if last.text is not None else last.value,
            "quality": int(last.quality)})
    return _encode({"values": values, "missing": missing})


def _serve(ctx: ApiContext, authorization: str | None, series: list[str],
           source: str = "") -> bytes:
    caller = ctx.auth.authenticate(authorization, source)  # every role may read
    return last_values_body(ctx, caller, series)


async def _last_values(request: Request) -> Response:
    ctx: ApiContext = request.app.state.millnet
    body = await run_in_threadpool(
        _serve, ctx, request.headers.get("authorization"), request.query_params.getlist("series"),
        request.client.host if request.client is not None else "")
    return Response(body, media_type="application/json")


def route(path: str) -> Route:
    return Route(path, _last_values, methods=["GET"], name="telemetry_last_hot",
                 include_in_schema=False)
