"""Alarms (issue 12): list and read alarms and their audit trail, act on them (ISA-18.2), and
the alarm system's EEMUA 191 figures.

Any token reads its tenant's alarms (a node-wide token every tenant's, or one tenant's with
``tenant_id``); operators and admins acknowledge, shelve, unshelve and remove from or return to
service, each action audited with the token's name and the comment. An action the alarm's
state does not allow answers 409 naming the state; another tenant's alarm answers 404.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, JsonValue

from millnet.alarms.flood import BENCHMARKS
from millnet.alarms.records import AlarmEvent, AlarmFilter, AlarmRecord
from millnet.alarms.service import AlarmService
from millnet.alarms.settings import SHELVE_LIMIT_S
from millnet.api.auth import Caller, Operator, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import EPOCH_MS_PATTERN, INT32_MAX, ObjectId, parse_time
from millnet.errors import NotFound
from millnet.model.alarms import AlarmState, Priority

router = APIRouter(tags=["alarms"])

StateName = Literal["normal", "unack_active", "acked_active", "rtn_unack", "shelved",
                    "suppressed_by_design", "out_of_service"]
PriorityName = Literal["critical", "high", "medium", "low"]
EXAMPLE_TIME = "2026-01-05T08:00:00Z"
# What parse_time reads, stated in the document (as api/contract.py states it for start/end):
# a schema-valid time is parsed, any other string refused.
_TIMES: list[JsonValue] = [{"type": "string", "format": "date-time", "maxLength": 40},
                           {"type": "string", "pattern": EPOCH_MS_PATTERN}]
TIME_SCHEMA: dict[str, JsonValue] = {"anyOf": _TIMES}
NULLABLE_TIME_SCHEMA: dict[str, JsonValue] = {"anyOf": [*_TIMES, {"type": "null"}]}
DAY_NS = 86_400 * 10**9


class AlarmOut(BaseModel):
    id: int = Field(examples=[42])
    tenant_id: int
    rule_id: int
    rule_name: str = Field(examples=["boiler-overtemp"])
    asset_id: int
    priority: PriorityName = Field(examples=["high"])
    state: StateName = Field(description="ISA-18.2 state (docs/alarms.md)",
                             examples=["unack_active"])
    condition_active: bool = Field(description="The rule's condition holds now")
    suppressed: bool = Field(description="The rule's suppression-by-design condition holds")
    message: str = Field(examples=["boiler temperature above 95 degC"])
    value: float | None = Field(description="The value that decided the latest transition",
                                examples=[97.5])
    notify: list[str] = Field(description="The rule's notification routes", examples=[["ops"]])
    first_activated_at: datetime | None
    last_activated_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None = Field(examples=["olga"])
    cleared_at: datetime | None
    shelved_until: datetime | None
    shelved_by: str | None
    shelve_comment: str | None
    oos_by: str | None = Field(description="Who last removed it from service")
    oos_comment: str | None
    activation_count: int
    updated_at: datetime

    @classmethod
    def of(cls, r: AlarmRecord) -> AlarmOut:
        return cls(
            id=r.id, tenant_id=r.tenant_id, rule_id=r.rule_id, rule_name=r.rule_name,
            asset_id=r.asset_id, priority=r.priority.label, state=r.state.value,  # type: ignore[arg-type]
            condition_active=r.condition_active, suppressed=r.suppressed, message=r.message,
            value=r.value, notify=list(r.notify), first_activated_at=r.first_activated_at,
            last_activated_at=r.last_activated_at, acked_at=r.acked_at, acked_by=r.acked_by,
            cleared_at=r.cleared_at, shelved_until=r.shelved_until, shelved_by=r.shelved_by,
            shelve_comment=r.shelve_comment, oos_by=r.oos_by, oos_comment=r.oos_comment,
            activation_count=r.activation_count, updated_at=r.updated_at)


class AlarmEventOut(BaseModel):
    id: int
    alarm_id: int
    event: str = Field(description="activated, cleared, acknowledged, shelved, unshelved, "
                                   "suppressed, unsuppressed, out_of_service, in_service, "
                                   "retired, condition_active, condition_cleared",
                       examples=["acknowledged"])
    from_state: StateName
    to_state: StateName
    condition_active: bool
    user: str | None = Field(description="The acting token's name; null for the node",
                             examples=["olga"])
    comment: str | None
    value: float | None
    ts_ms: float = Field(description="The sample's time, or the action's (epoch ms)")
    stored_at: datetime

    @classmethod
    def of(cls, e: AlarmEvent) -> AlarmEventOut:
        return cls(id=e.id, alarm_id=e.alarm_id, event=e.event, from_state=e.from_state.value,
                   to_state=e.to_state.value, condition_active=e.condition_active,
                   user=e.user, comment=e.comment, value=e.value, ts_ms=e.ts_ns / 1e6,
                   stored_at=e.stored_at)


class CommentIn(BaseModel):
    comment: str | None = Field(default=None, max_length=1000, examples=["seen, checking"])


class ShelveIn(CommentIn):
    duration_s: float | None = Field(
        default=None, gt=0, le=SHELVE_LIMIT_S,
        description="Shelve for this long; give this or until. The node's limit "
                    "(alarms.max_shelve_s) may be lower: 400 naming the field", examples=[3600])
    until: str | None = Field(default=None, max_length=40,
                              description="Shelve until then (ISO 8601 or epoch ms)",
                              examples=[EXAMPLE_TIME],
                              json_schema_extra=NULLABLE_TIME_SCHEMA)


class TopAlarm(BaseModel):
    alarm_id: int
    rule_name: str
    asset_id: int
    annunciations: int


class PerformanceOut(BaseModel):
    since: datetime
    until: datetime
    intervals: int = Field(description="10-minute intervals in the period")
    annunciated: int = Field(description="Alarms shown to the operator (entries into "
                                         "unack_active)")
    average_per_10min: float
    peak_per_10min: int
    flood_intervals: int = Field(description="Intervals above the flood threshold")
    flood_share: float = Field(description="Share of intervals in flood (0..1)")
    assessment: Literal["acceptable", "manageable", "demanding", "flood"] = Field(
        description="The average rate against EEMUA 191's benchmarks")
    standing: list[int] = Field(description="Alarms active longer than alarms.standing_after_s "
                                            "at the end of the period")
    chattering: list[int] = Field(description="Alarms activating alarms.chatter_count times "
                                              "within alarms.chatter_window_s")
    top: list[TopAlarm] = Field(description="The ten alarms annunciated most often")
    benchmarks: dict[str, float] = Field(examples=[BENCHMARKS])


def _service(request: Request) -> AlarmService:
    service: AlarmService = request.app.state.alarms
    return service


def _scope(caller: Caller, tenant_id: int | None) -> int | None:
    """A tenant token sees its own tenant (naming another answers 404); a node-wide token
    every tenant or the one it names."""
    if caller.tenant_id is None:
        return tenant_id
    if tenant_id is not None and tenant_id != caller.tenant_id:
        raise NotFound(f"tenant {tenant_id} not found")
    return caller.tenant_id


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=(ns % 10**9) // 1000)


async def _user(request: Request, caller: Caller) -> str:
    registry = request.app.state.millnet.registry
    token = await asyncio.to_thread(registry.get_token, caller.token_id)
    return str(token.name)


TenantQuery = Annotated[int | None, Query(
    ge=1, le=INT32_MAX, description="Only this tenant's (node-wide tokens; a tenant token's "
                                    "own by default)")]
SinceQuery = Annotated[str | None, Query(max_length=40, description="ISO 8601 or epoch ms",
                                         examples=[EXAMPLE_TIME],
                                         json_schema_extra=TIME_SCHEMA)]


@router.get("/alarms/performance", response_model=PerformanceOut,
            summary="EEMUA 191 alarm-system figures over a period (default the last 24 h)",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def performance(request: Request, caller: Viewer, since: SinceQuery = None,
                      until: SinceQuery = None, tenant_id: TenantQuery = None,
                      ) -> PerformanceOut:
    end = parse_time(until, "until") if until is not None else int(
        datetime.now(UTC).timestamp() * 1e9)
    start = parse_time(since, "since") if since is not None else end - DAY_NS
    f, names = await _service(request).performance(_scope(caller, tenant_id), start, end)
    return PerformanceOut(
        since=_utc(f.since_ns), until=_utc(f.until_ns), intervals=f.intervals,
        annunciated=f.annunciated, average_per_10min=f.average_per_10min,
        peak_per_10min=f.peak_per_10min, flood_intervals=f.flood_intervals,
        flood_share=f.flood_share, assessment=f.assessment,  # type: ignore[arg-type]
        standing=f.standing, chattering=f.chattering,
        top=[TopAlarm(alarm_id=a, rule_name=names.get(a, ("?", 0))[0],
                      asset_id=names.get(a, ("?", 0))[1], annunciations=n) for a, n in f.top],
        benchmarks=BENCHMARKS)


@router.get("/alarms", response_model=list[AlarmOut], summary="Alarms, newest first",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def list_alarms(
    request: Request, caller: Viewer,
    state: Annotated[list[StateName] | None, Query(description="Repeatable")] = None,
    priority: PriorityName | None = None,
    rule_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    asset_id: Annotated[list[int] | None, Query(description="Repeatable")] = None,
    active: Annotated[bool | None, Query(description="The condition holds")] = None,
    since: SinceQuery = None, until: SinceQuery = None,
    before: Annotated[int | None, Query(ge=1, le=INT32_MAX,
                                        description="Ids below this one (the next page)")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tenant_id: TenantQuery = None,
) -> list[AlarmOut]:
    f = AlarmFilter(
        tenant_id=_scope(caller, tenant_id), states=tuple(AlarmState(s) for s in state or ()),
        priority=Priority.parse(priority) if priority else None, rule_id=rule_id,
        asset_ids=tuple(a for a in asset_id or () if 0 < a <= INT32_MAX), active=active,
        since=_utc(parse_time(since, "since")) if since is not None else None,
        until=_utc(parse_time(until, "until")) if until is not None else None, before=before,
        limit=limit)
    return [AlarmOut.of(r) for r in await _service(request).list_alarms(f)]


@router.get("/alarms/{alarm_id}", response_model=AlarmOut, summary="One alarm",
            responses=responses(*AUTH_ERRORS, 404))
async def get_alarm(request: Request, caller: Viewer, alarm_id: ObjectId) -> AlarmOut:
    return AlarmOut.of(await _service(request).get(caller.tenant_id, alarm_id))


@router.get("/alarms/{alarm_id}/events", response_model=list[AlarmEventOut],
            summary="An alarm's audit trail, newest first",
            responses=responses(*AUTH_ERRORS, 404))
async def alarm_events(
    request: Request, caller: Viewer, alarm_id: ObjectId,
    before: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlarmEventOut]:
    trail = await _service(request).events(caller.tenant_id, alarm_id, before=before,
                                           limit=limit)
    return [AlarmEventOut.of(e) for e in trail]


_ACTS = responses(*AUTH_ERRORS, 404, 409)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut, responses=_ACTS,
             summary="Acknowledge (operators, admins)")
async def acknowledge(request: Request, caller: Operator, alarm_id: ObjectId,
                      body: CommentIn) -> AlarmOut:
    return AlarmOut.of(await _service(request).acknowledge(
        caller.tenant_id, alarm_id, await _user(request, caller), body.comment))


@router.post("/alarms/{alarm_id}/shelve", response_model=AlarmOut,
             responses=responses(*AUTH_ERRORS, 400, 404, 409),
             summary="Shelve for a while: not annunciated until it expires or is unshelved")
async def shelve(request: Request, caller: Operator, alarm_id: ObjectId,
                 body: ShelveIn) -> AlarmOut:
    until = _utc(parse_time(body.until, "until")) if body.until is not None else None
    return AlarmOut.of(await _service(request).shelve(
        caller.tenant_id, alarm_id, await _user(request, caller), until=until,
        duration_s=body.duration_s, comment=body.comment))


@router.post("/alarms/{alarm_id}/unshelve", response_model=AlarmOut, responses=_ACTS,
             summary="Unshelve: back where its condition says")
async def unshelve(request: Request, caller: Operator, alarm_id: ObjectId,
                   body: CommentIn) -> AlarmOut:
    return AlarmOut.of(await _service(request).unshelve(
        caller.tenant_id, alarm_id, await _user(request, caller), body.comment))


@router.post("/alarms/{alarm_id}/out-of-service", response_model=AlarmOut, responses=_ACTS,
             summary="Remove from service (maintenance): tracked, not annunciated")
async def out_of_service(request: Request, caller: Operator, alarm_id: ObjectId,
                         body: CommentIn) -> AlarmOut:
    return AlarmOut.of(await _service(request).remove_from_service(
        caller.tenant_id, alarm_id, await _user(request, caller), body.comment))


@router.post("/alarms/{alarm_id}/in-service", response_model=AlarmOut, responses=_ACTS,
             summary="Return to service: back where its condition says")
async def in_service(request: Request, caller: Operator, alarm_id: ObjectId,
                     body: CommentIn) -> AlarmOut:
    return AlarmOut.of(await _service(request).return_to_service(
        caller.tenant_id, alarm_id, await _user(request, caller), body.comment))
