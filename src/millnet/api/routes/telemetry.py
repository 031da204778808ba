"""Telemetry queries: raw samples, time buckets, last values, by series id.

Every series id is checked against the caller's tenant first; an id of another tenant answers
404 like an unknown one. Bodies are columnar (one array per field) and encoded by msgspec; the
pydantic models below document them in OpenAPI.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from millnet.api.auth import Viewer
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.hot import last_values_body
from millnet.api.params import (
    WIDTH_PATTERN,
    bucket_range,
    parse_series,
    parse_width,
    raw_limit,
    time_range,
    to_ms,
)
from millnet.api.scope import check_series
from millnet.telemetry.base import Bucket, SamplePoint, TelemetryStore

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

_encode = msgspec.json.Encoder().encode

TS_DOC = "Epoch milliseconds (UTC); the fraction carries microseconds"
QUALITY_DOC = "0 good, 1 uncertain, 2 bad, 3 stale (the source went away)"

# ``series`` is parsed by hand (repeated and comma-separated forms, 400 naming the parameter);
# api/contract.py documents it as a required array of series ids.
SeriesQuery = Annotated[list[str] | None, Query(
    description="Series ids (a point's series_id), repeated or comma-separated: "
                "`series=1&series=2` or `series=1,2`")]
StartQuery = Annotated[str | None, Query(
    description="Inclusive start: ISO 8601 or epoch ms; default one hour before end. A start "
                "at or after end selects nothing", examples=["2025-01-31T08:00:00Z"])]
EndQuery = Annotated[str | None, Query(
    description="Exclusive end: ISO 8601 or epoch ms; default now", examples=["1738310400000"])]
LimitQuery = Annotated[int | None, Query(
    ge=1, description="Rows per series at most; lowered so that limit × series stays within "
                      "the node's maximum (the answer's ``limit`` is the one applied)")]
WidthQuery = Annotated[str, Query(
    pattern=WIDTH_PATTERN,
    description="Bucket width: a number and a unit, e.g. 500ms, 15s, 1m, 1h, 1d (days at "
                "most 36500)")]


class RawSeries(BaseModel):
    series_id: int
    ts_ms: list[float] = Field(description=TS_DOC)
    value: list[float | str | None] = Field(
        description="Numbers (null for NaN) or, for text points, strings")
    quality: list[int] = Field(description=QUALITY_DOC)
    truncated: bool = Field(description="More samples exist in the range than ``limit``")
    next_start_ms: float | None = Field(
        description="When truncated: the ``start`` that continues after the last sample")


class RawAnswer(BaseModel):
    start_ms: float
    end_ms: float
    limit: int = Field(description="Rows per series at most")
    series: list[RawSeries] = Field(description="In the order requested")


class BucketSeries(BaseModel):
    series_id: int
    ts_ms: list[float] = Field(description="Bucket starts (epoch-aligned); " + TS_DOC)
    count: list[int] = Field(description="Samples in the bucket (NaN excluded)")
    avg: list[float]
    min: list[float]
    max: list[float]
    last: list[float] = Field(description="The latest value in the bucket")


class BucketAnswer(BaseModel):
    start_ms: float
    end_ms: float = Field(description="Where this answer ends: the requested end, or, when "
                                      "``truncated``, the ``start`` that continues")
    width_ms: float
    truncated: bool = Field(
        description="The range held more buckets than the node answers at once (10,000 by "
                    "default)")
    series: list[BucketSeries] = Field(
        description="In the order requested; buckets without samples are left out")


class LastValueOut(BaseModel):
    series_id: int
    ts_ms: float = Field(description=TS_DOC)
    value: float | str | None = Field(description="Number (null for NaN) or text")
    quality: int = Field(description=QUALITY_DOC)


class LastValues(BaseModel):
    values: list[LastValueOut] = Field(description="In the order requested")
    missing: list[int] = Field(description="Requested series without any value yet")


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _raw_series(sid: int, rows: list[SamplePoint], limit: int) -> dict[str, Any]:
    truncated = len(rows) > limit
    rows = rows[:limit]
    return {
        "series_id": sid,
        "ts_ms": [to_ms(r.ts_ns) for r in rows],
        "value": [r.text if r.text is not None else r.value for r in rows],
        "quality": [int(r.quality) for r in rows],
        "truncated": truncated,
        # Stores keep microseconds, so the next sample is at least 1 µs later.
        "next_start_ms": to_ms(rows[-1].ts_ns + 1_000) if truncated else None,
    }


@router.get(
    "/raw", response_model=RawAnswer, summary="Raw samples of one or more series",
    responses=responses(*AUTH_ERRORS, 400, 404),
    description="Samples in ``[start, end)`` in time order, at most ``limit`` per series; "
                "``limit`` × series is at most the node's maximum (100,000 by default).")
def raw(
    ctx: Ctx, caller: Viewer, series: SeriesQuery = None, start: StartQuery = None,
    end: EndQuery = None, limit: LimitQuery = None,
) -> Response:
    ids = parse_series(series or [], ctx.limits.max_series)
    start_ns, end_ns = time_range(start, end, ctx.limits)
    per_series = raw_limit(limit, len(ids), ctx.limits)
    check_series(ctx, caller, ids)
    rows = _rows_per_series(ctx.store, ids, start_ns, end_ns, per_series)
    answer = [_raw_series(sid, rows[sid], per_series) for sid in ids]
    return _json(_encode({"start_ms": to_ms(start_ns), "end_ms": to_ms(end_ns),
                          "limit": per_series, "series": answer}))


def _rows_per_series(
    store: TelemetryStore, ids: list[int], start_ns: int, end_ns: int, per_series: int,
) -> dict[int, list[SamplePoint]]:
    """Up to ``per_series + 1`` rows of each series (one more shows truncation).

    One query serves them all unless its overall limit was reached: the store orders rows by
    series id, so the series from the one it stopped in onwards may be incomplete, and only
    those are asked again, one by one.
    """
    if start_ns == end_ns:  # an empty range
        return {sid: [] for sid in ids}
    overall = per_series * len(ids)
    rows = store.query_range(ids, start_ns, end_ns, limit=overall + 1)
    grouped: dict[int, list[SamplePoint]] = {sid: [] for sid in ids}
    for row in rows:
        grouped[row.series_id].append(row)
    if len(rows) > overall:
        for sid in ids:
            if sid >= rows[-1].series_id:
                grouped[sid] = store.query_range([sid], start_ns, end_ns, limit=per_series + 1)
    return grouped


def _bucket_series(sid: int, buckets: list[Bucket]) -> dict[str, Any]:
    return {
        "series_id": sid,
        "ts_ms": [to_ms(b.start_ns) for b in buckets],
        "count": [b.count for b in buckets],
        "avg": [b.avg for b in buckets],
        "min": [b.min for b in buckets],
        "max": [b.max for b in buckets],
        "last": [b.last for b in buckets],
    }


@router.get(
    "/buckets", response_model=BucketAnswer,
    summary="Time-bucketed aggregates (count, avg, min, max, last) of one or more series",
    responses=responses(*AUTH_ERRORS, 400, 404))
def buckets(
    ctx: Ctx, caller: Viewer, series: SeriesQuery = None, start: StartQuery = None,
    end: EndQuery = None,
    width: WidthQuery = "1m",
) -> Response:
    ids = parse_series(series or [], ctx.limits.max_series)
    start_ns, end_ns = time_range(start, end, ctx.limits)
    width_ns = parse_width(width)
    end_ns, truncated = bucket_range(start_ns, end_ns, width_ns, ctx.limits)
    check_series(ctx, caller, ids)
    by_series: dict[int, list[Bucket]] = defaultdict(list)
    found = ctx.store.query_buckets(ids, start_ns, end_ns, width_ns) if start_ns < end_ns else []
    for bucket in found:
        by_series[bucket.series_id].append(bucket)
    answer = [_bucket_series(sid, sorted(by_series.get(sid, []), key=lambda b: b.start_ns))
              for sid in ids]
    return _json(_encode({"start_ms": to_ms(start_ns), "end_ms": to_ms(end_ns),
                          "width_ms": to_ms(width_ns), "truncated": truncated,
                          "series": answer}))


@router.get(
    "/last", response_model=LastValues, summary="Current values of many series",
    responses=responses(*AUTH_ERRORS, 400, 404),
    description="The hot read path (served by a plain Starlette route with the same contract). "
                "At most 1,000 series per request by default.")
def last(ctx: Ctx, caller: Viewer, series: SeriesQuery = None) -> Response:
    return _json(last_values_body(ctx, caller, series or []))
