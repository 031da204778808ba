"""EPCIS 2.0 capture and query (``/epcis``) and the trace of an identifier (``/trace``);
docs/traceability.md.

Capture is all or nothing: a document with one bad event answers 422 with the JSON path of
every error and stores nothing; an event already stored (same standard event hash) is counted
as a duplicate and not stored again. Events and traces of another tenant do not exist for the
caller (the tenant is the token's, or ``tenant_id`` for a node-wide token).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from millnet.api.auth import Operator, Viewer
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, parse_time
from millnet.api.scope import tenant_of_request
from millnet.errors import InvalidInput
from millnet.trace import ids
from millnet.trace.capture import InvalidDocument, parse, short_step
from millnet.trace.graph import MAX_DEPTH, MAX_HOPS, Tracer
from millnet.trace.store import EpcisStore, EventFilter

router = APIRouter(tags=["traceability"])
MAX_BODY = 32 * 1024 * 1024
#: Strict JSON (no NaN or Infinity, which Python's json reads), and faster than json.loads.
_DECODER = msgspec.json.Decoder()


class CaptureAnswer(BaseModel):
    stored: int = Field(description="Events stored by this request")
    duplicates: int = Field(description="Events already stored (same event hash), not again")
    event_hashes: list[str] = Field(description="The standard event hash of each event given")


class TraceRequest(BaseModel):
    identifiers: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=1000)
    depth: int = Field(default=8, ge=0, le=MAX_DEPTH)
    hops: int = Field(default=MAX_HOPS, ge=0, le=MAX_HOPS)
    conditions: bool = True


class TraceMany(BaseModel):
    traces: dict[str, dict[str, Any]] = Field(description="Upstream tree per identifier key")


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at "
                                               "the end")


def _store(request: Request) -> EpcisStore:
    store: EpcisStore = request.app.state.epcis
    return store


def _tracer(request: Request) -> Tracer:
    tracer: Tracer = request.app.state.tracer
    return tracer


@router.post("/epcis/capture", status_code=201, response_model=CaptureAnswer,
             summary="Capture an EPCIS 2.0 document (JSON-LD) or a single event",
             responses=responses(*AUTH_ERRORS, 400, 404, 422))
async def capture(request: Request, ctx: Ctx, caller: Operator,
                  tenant_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                  ) -> Any:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidInput(f"the document is larger than {MAX_BODY} bytes", "body")
    try:
        doc = _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        return JSONResponse(status_code=400, content={
            "error": "invalid_json", "detail": f"not JSON: {exc}", "field": "body"})
    store = _store(request)

    def work() -> CaptureAnswer:
        rows = parse(doc)
        result = store.capture(tenant, rows)
        return CaptureAnswer(stored=result.stored, duplicates=result.duplicates,
                             event_hashes=list(result.hashes))

    try:
        return await asyncio.to_thread(work)
    except InvalidDocument as exc:
        return JSONResponse(status_code=422, content={
            "error": "invalid_epcis", "detail": str(exc), "field": exc.errors[0].path or None,
            "errors": [{"path": e.path, "message": e.message} for e in exc.errors]})


@router.get("/epcis/events", response_model=EventsPage,
            summary="EPCIS events by identifier, business step, type, read point and time",
            responses=responses(*AUTH_ERRORS, 400, 404))
def events(
    request: Request, ctx: Ctx, caller: Viewer,
    epc: Annotated[str | None, Query(max_length=500, description="An identifier: EPC URI, "
                                     "GS1 Digital Link, hdl: URI or bare handle")] = None,
    biz_step: Annotated[str | None, Query(alias="bizStep", max_length=200)] = None,
    event_type: Annotated[Literal["ObjectEvent", "AggregationEvent", "TransformationEvent",
                                  "AssociationEvent", "TransactionEvent"] | None,
                          Query(alias="type")] = None,
    read_point: Annotated[str | None, Query(alias="readPoint", max_length=500)] = None,
    start: Annotated[str | None, Query(description="eventTime at or after (ISO 8601 or "
                                                   "epoch ms)")] = None,
    end: Annotated[str | None, Query(description="eventTime before")] = None,
    after: Annotated[int | None, Query(ge=0, description="Events after this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tenant_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> EventsPage:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    f = EventFilter(
        tenant_id=tenant, identifier=None if epc is None else ids.key_of(epc),
        biz_step=short_step(biz_step), event_type=event_type, read_point=read_point,
        start_us=None if start is None else parse_time(start, "start") // 1000,
        end_us=None if end is None else parse_time(end, "end") // 1000,
        after_id=after, limit=limit)
    found = _store(request).events(f)
    return EventsPage(events=[{**e.body, "_id": e.id} for e in found],
                      next_after=found[-1].id if len(found) == limit else None)


@router.get("/trace/{identifier:path}",
            summary="The trace of a product, batch or part: upstream through its bill of "
                    "materials (across nodes), downstream, and production conditions",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def trace(
    request: Request, ctx: Ctx, caller: Viewer,
    identifier: Annotated[str, Path(min_length=1, max_length=500)],
    direction: Literal["up", "down", "both"] = "both",
    depth: Annotated[int, Query(ge=0, le=MAX_DEPTH)] = 8,
    hops: Annotated[int, Query(ge=0, le=MAX_HOPS)] = MAX_HOPS,
    conditions: bool = True,
    tenant_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> Any:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    tree = await _tracer(request).trace(
        tenant, identifier, depth=depth, hops=hops, upstream=direction != "down",
        downstream=direction != "up", conditions=conditions)
    return JSONResponse(tree)  # plain JSON: FastAPI's encoder walks every node in Python


@router.post("/trace", response_model=TraceMany,
             summary="Upstream traces of several identifiers in one walk (what a node asks "
                     "another enterprise's node for)",
             responses=responses(*AUTH_ERRORS, 400, 404))
async def trace_many(request: Request, ctx: Ctx, caller: Viewer, body: TraceRequest,
                     tenant_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                     ) -> Any:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    traces = await _tracer(request).trace_many(
        tenant, body.identifiers, depth=body.depth, hops=body.hops,
        conditions=body.conditions)
    return JSONResponse({"traces": traces})  # the trees as they are (see GET)
