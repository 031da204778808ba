"""Security events (issue 13): what the node's detectors raised, counts for situation views,
and acknowledgement.

Any token reads events: a node-wide token every event (node-wide ones included, or one tenant's
with ``tenant_id``), a tenant token only its tenant's, never the node-wide ones (naming another
tenant answers 404). Operators and admins acknowledge (``ack``) or close (``close``) an event,
kept with the token's name and the comment. The monitor is ``app.state.security``. Incidents
and sensors' reports are in ``security_incidents`` (included here).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Caller, Operator, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId, parse_time, parse_width
from millnet.api.routes import security_incidents
from millnet.api.routes.alarms import SinceQuery, TenantQuery
from millnet.errors import InvalidInput, NotFound
from millnet.model.security import DetailValue, Severity
from millnet.security import EventQuery, SecurityMonitor, StoredEvent
from millnet.security.records import Status

router = APIRouter(tags=["security"])

SeverityName = Literal["info", "low", "medium", "high", "critical"]
StatusName = Literal["open", "acknowledged", "closed"]
DAY = timedelta(days=1)


class SecurityEventOut(BaseModel):
    id: int = Field(examples=[7])
    tenant_id: int | None = Field(description="null: a node-wide event")
    kind: str = Field(examples=["auth.brute_force"])
    severity: SeverityName = Field(examples=["high"])
    summary: str = Field(examples=["40 failed authentications on api from 192.0.2.7 within 60 s"])
    source: str = Field(description="Who acted (an address, a device, a node)",
                        examples=["192.0.2.7"])
    target: str = Field(description="What was acted on", examples=["api"])
    first_seen: datetime
    last_seen: datetime
    count: int = Field(description="Occurrences folded into this event", examples=[2500])
    detail: dict[str, DetailValue]
    status: StatusName
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str | None

    @classmethod
    def of(cls, e: StoredEvent) -> SecurityEventOut:
        return cls(id=e.id, tenant_id=e.tenant_id, kind=e.kind, severity=e.severity.label,  # type: ignore[arg-type]
                   summary=e.summary, source=e.source, target=e.target,
                   first_seen=e.first_seen, last_seen=e.last_seen, count=e.count,
                   detail=e.detail, status=e.status, acked_by=e.acked_by,
                   acked_at=e.acked_at, ack_comment=e.ack_comment)


class EventsPage(BaseModel):
    events: list[SecurityEventOut]
    next_cursor: int | None = Field(description="Give as cursor for the next page; null at "
                                                "the end")


class BucketOut(BaseModel):
    start: datetime
    kind: str
    severity: SeverityName
    events: int = Field(description="Events first seen in the bucket")
    occurrences: int = Field(description="Their counts summed")


class SummaryOut(BaseModel):
    since: datetime
    until: datetime
    bucket_s: float
    buckets: list[BucketOut]


class AckIn(BaseModel):
    comment: str | None = Field(default=None, max_length=1000,
                                examples=["source blocked at the firewall"])
    close: bool = Field(default=False, description="Close the event instead (no more "
                                                   "occurrences fold into it)")


def _monitor(request: Request) -> SecurityMonitor:
    monitor: SecurityMonitor = request.app.state.security
    return monitor


def _when(raw: str | None, field: str) -> datetime | None:
    if raw is None:
        return None
    ns = parse_time(raw, field)
    return datetime.fromtimestamp(ns // 10**9, UTC) + timedelta(microseconds=ns % 10**9 // 1000)


def _query(caller: Caller, tenant_id: int | None, **filters: object) -> EventQuery:
    if caller.tenant_id is not None and tenant_id not in (None, caller.tenant_id):
        raise NotFound(f"tenant {tenant_id} not found")
    return EventQuery.for_caller(caller.tenant_id, tenant_id, **filters)


KindQuery = Annotated[str | None, Query(
    max_length=132, pattern=r"^[a-z0-9_.]+$",
    description="Only kinds starting with this (auth. for the family)", examples=["auth."])]


@router.get("/security/events", response_model=EventsPage,
            summary="Security events, newest first, a page at a time",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def list_events(
    request: Request, caller: Viewer, kind: KindQuery = None,
    severity: Annotated[SeverityName | None, Query(description="At least this severe")] = None,
    since: SinceQuery = None, until: SinceQuery = None,
    source: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[StatusName | None, Query()] = None, tenant_id: TenantQuery = None,
    cursor: Annotated[int | None, Query(ge=1, le=INT32_MAX,
                                        description="The previous page's next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsPage:
    q = _query(caller, tenant_id, kind_prefix=kind,
               min_severity=Severity.parse(severity) if severity else Severity.INFO,
               since=_when(since, "since"), until=_when(until, "until"),
               source=source, status=status)
    events, next_cursor = await asyncio.to_thread(
        _monitor(request).store.query, q, cursor=cursor, limit=limit)
    return EventsPage(events=[SecurityEventOut.of(e) for e in events], next_cursor=next_cursor)


@router.get("/security/summary", response_model=SummaryOut,
            summary="Security events by time bucket, kind and severity (default: the last "
                    "24 h by hour)",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def summary(
    request: Request, caller: Viewer, since: SinceQuery = None, until: SinceQuery = None,
    bucket: Annotated[str, Query(max_length=12, description="Bucket width: 15m, 1h, 1d",
                                 examples=["1h"])] = "1h",
    kind: KindQuery = None, tenant_id: TenantQuery = None,
) -> SummaryOut:
    end = _when(until, "until") or datetime.now(UTC)
    start = _when(since, "since") or end - DAY
    if start >= end:
        raise InvalidInput("since must be before until", "since")
    width = timedelta(microseconds=parse_width(bucket, "bucket") // 1000)
    q = _query(caller, tenant_id, kind_prefix=kind, since=start, until=end)
    counts = await asyncio.to_thread(_monitor(request).store.counts, q, width)
    return SummaryOut(since=start, until=end, bucket_s=width.total_seconds(), buckets=[
        BucketOut(start=c.start, kind=c.kind, severity=c.severity.label,  # type: ignore[arg-type]
                  events=c.events, occurrences=c.occurrences)
        for c in counts])


@router.post("/security/events/{event_id}/ack", response_model=SecurityEventOut,
             summary="Acknowledge (or close) a security event, with a comment",
             responses=responses(*AUTH_ERRORS, 404, 409))
async def acknowledge(request: Request, caller: Operator, event_id: ObjectId,
                      body: AckIn) -> SecurityEventOut:
    registry = request.app.state.millnet.registry
    token = await asyncio.to_thread(registry.get_token, caller.token_id)
    status: Status = "closed" if body.close else "acknowledged"
    scope = _query(caller, None)
    event = await asyncio.to_thread(
        _monitor(request).store.set_status, event_id, status, user=str(token.name),
        comment=body.comment, scope=scope)
    return SecurityEventOut.of(event)


# Incidents and sensors' reports: their own module, served wherever the events are.
router.include_router(security_incidents.router)
