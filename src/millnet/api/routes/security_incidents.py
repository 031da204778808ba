"""Security incidents, and what external sensors report (issue 13).

Incidents: any token reads (a tenant's token only its tenant's incidents, naming another tenant
answers 404); operators and admins open them and move them through their statuses, each change
audited with the token's name and reported upward by the node. Sensors: an admin token posts
batches of events (``POST /security/events``) into the node's monitor, where they fold like the
node's own (a tenant's token reports its tenant's events), and a node-wide admin token the hosts
it saw (``POST /security/hosts``), which the inventory sent upward includes.

Included by ``security.py``'s router, so it is served wherever the security events are.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Admin, Caller, Operator, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.routes.alarms import TenantQuery
from millnet.errors import NotFound, PermissionDenied
from millnet.model.security import Severity
from millnet.security import SecurityMonitor
from millnet.security.incidents import MAX_EVENTS, AuditEntry, Incident
from millnet.security.intake import MAX_EVENTS as MAX_REPORTED
from millnet.security.intake import MAX_HOSTS, parse_events, parse_hosts

router = APIRouter(tags=["security"])

SeverityName = Literal["info", "low", "medium", "high", "critical"]
IncidentStatus = Literal["open", "investigating", "contained", "resolved", "closed"]


class AuditOut(BaseModel):
    from_status: IncidentStatus | None = Field(description="null: the incident was opened")
    to_status: IncidentStatus
    actor: str
    comment: str | None
    at: datetime

    @classmethod
    def of(cls, a: AuditEntry) -> AuditOut:
        return cls(from_status=a.from_status, to_status=a.to_status,  # type: ignore[arg-type]
                   actor=a.actor, comment=a.comment, at=a.at)


class IncidentOut(BaseModel):
    id: int = Field(examples=[3])
    tenant_id: int | None = Field(description="null: a node-wide incident")
    title: str = Field(examples=["Brute force on the API from 192.0.2.7"])
    severity: SeverityName
    status: IncidentStatus
    description: str
    event_ids: list[int] = Field(description="Related security events")
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    audit: list[AuditOut] = Field(description="Status changes, oldest first (only on GET of "
                                              "one incident and after a change)")

    @classmethod
    def of(cls, i: Incident) -> IncidentOut:
        return cls(id=i.id, tenant_id=i.tenant_id, title=i.title,
                   severity=i.severity.label, status=i.status,  # type: ignore[arg-type]
                   description=i.description, event_ids=list(i.event_ids),
                   opened_by=i.opened_by, opened_at=i.opened_at, updated_at=i.updated_at,
                   closed_at=i.closed_at, audit=[AuditOut.of(a) for a in i.audit])


class IncidentsPage(BaseModel):
    incidents: list[IncidentOut]
    next_cursor: int | None


class IncidentIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    severity: SeverityName
    description: str = Field(default="", max_length=10_000)
    event_ids: list[Annotated[int, Field(ge=1, le=INT32_MAX)]] = Field(
        default_factory=list, max_length=MAX_EVENTS)
    tenant_id: int | None = Field(default=None, ge=1, le=INT32_MAX,
                                  description="A node-wide token may open a tenant's incident; "
                                              "a tenant's token opens its tenant's")
    comment: str | None = Field(default=None, max_length=1000)


class StatusIn(BaseModel):
    status: IncidentStatus
    comment: str | None = Field(default=None, max_length=1000,
                                examples=["source blocked at the firewall"])


class Accepted(BaseModel):
    accepted: int = Field(description="Events taken into the monitor")
    dropped: int = Field(description="Events the monitor had no room for (it reports an "
                                     "overflow event)")


class HostsAccepted(BaseModel):
    known: int = Field(description="Hosts the node knows from sensors now")


def _monitor(request: Request) -> SecurityMonitor:
    monitor: SecurityMonitor = request.app.state.security
    return monitor


def _scope(caller: Caller, tenant_id: int | None) -> int | None:
    """The only tenant the caller may see here (None: every one)."""
    if caller.tenant_id is not None and tenant_id not in (None, caller.tenant_id):
        raise NotFound(f"tenant {tenant_id} not found")
    return caller.tenant_id if caller.tenant_id is not None else tenant_id


async def _actor(request: Request, caller: Caller) -> str:
    registry = request.app.state.millnet.registry
    token = await asyncio.to_thread(registry.get_token, caller.token_id)
    return str(token.name)


@router.post("/security/incidents", response_model=IncidentOut, status_code=201,
             summary="Open a security incident over events",
             responses=responses(*AUTH_ERRORS, 400, 404, 503))
async def create_incident(request: Request, caller: Operator, body: IncidentIn) -> IncidentOut:
    tenant = _scope(caller, body.tenant_id)
    actor = await _actor(request, caller)
    incident = await asyncio.to_thread(
        _monitor(request).incidents.create, title=body.title,
        severity=Severity.parse(body.severity), tenant_id=tenant, actor=actor,
        description=body.description, event_ids=body.event_ids, comment=body.comment)
    return IncidentOut.of(incident)


@router.get("/security/incidents", response_model=IncidentsPage,
            summary="Security incidents, newest first, a page at a time",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def list_incidents(
    request: Request, caller: Viewer, status: Annotated[IncidentStatus | None, Query()] = None,
    tenant_id: TenantQuery = None,
    cursor: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentsPage:
    found, next_cursor = await asyncio.to_thread(
        _monitor(request).incidents.query, only_tenant=_scope(caller, tenant_id),
        status=status, cursor=cursor, limit=limit)
    return IncidentsPage(incidents=[IncidentOut.of(i) for i in found], next_cursor=next_cursor)


@router.get("/security/incidents/{incident_id}", response_model=IncidentOut,
            summary="One security incident with its audit trail",
            responses=responses(*AUTH_ERRORS, 404))
async def get_incident(request: Request, caller: Viewer, incident_id: ObjectId) -> IncidentOut:
    incident = await asyncio.to_thread(_monitor(request).incidents.get, incident_id,
                                       _scope(caller, None))
    return IncidentOut.of(incident)


@router.post("/security/incidents/{incident_id}/status", response_model=IncidentOut,
             summary="Move an incident on (409 names the statuses it may move to)",
             responses=responses(*AUTH_ERRORS, 404, 409, 503))
async def set_incident_status(request: Request, caller: Operator, incident_id: ObjectId,
                              body: StatusIn) -> IncidentOut:
    actor = await _actor(request, caller)
    incident = await asyncio.to_thread(
        _monitor(request).incidents.set_status, incident_id, body.status, actor=actor,
        comment=body.comment, only_tenant=_scope(caller, None))
    return IncidentOut.of(incident)


EVENTS_DOC = (f"`{{\"events\": [{{kind, severity, summary, source?, target?, occurred_at?, "
              f"detail?}}]}}`, at most {MAX_REPORTED} events")
HOSTS_DOC = (f"`{{\"hosts\": [{{address, mac?, roles?, protocols?, services?, vendor?, model?, "
             f"firmware?, first_seen?, last_seen?}}]}}`, at most {MAX_HOSTS} hosts")


@router.post("/security/events", response_model=Accepted, status_code=202,
             summary="A sensor reports security events (admin tokens)",
             responses=responses(*AUTH_ERRORS, 400))
async def report_events(
    request: Request, caller: Admin,
    body: Annotated[dict[str, Any], Body(description=EVENTS_DOC)],
) -> Accepted:
    events = parse_events(body, f"token:{caller.token_id}")
    monitor = _monitor(request)
    taken = sum(monitor.report(e, caller.tenant_id) for e in events)
    return Accepted(accepted=taken, dropped=len(events) - taken)


@router.post("/security/hosts", response_model=HostsAccepted,
             summary="A sensor reports the hosts it saw (node-wide admin tokens)",
             responses=responses(*AUTH_ERRORS, 400))
async def report_hosts(
    request: Request, caller: Admin,
    body: Annotated[dict[str, Any], Body(description=HOSTS_DOC)],
) -> HostsAccepted:
    if not caller.node_wide:
        raise PermissionDenied("the plant's hosts are the node's: a node-wide token reports "
                               "them")
    return HostsAccepted(known=_monitor(request).hosts.update(parse_hosts(body)))
