"""Write-back commands (issue 11): write a device's point and read the audit of every attempt.

``POST /commands`` answers 200 with the command's record once it has its final result
(``confirmed``, ``failed`` or ``timeout``); a refused command (403 for a viewer, 404 for a device
or point that does not exist in the caller's tenant, 400 naming ``value`` for a value the point's
datatype cannot hold, 409 for a point no running source marks writable) is audited too, with the
result ``refused``. Any token reads its tenant's audit; nothing deletes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from millnet.api.auth import Caller, Viewer
from millnet.api.errors import AUTH_ERRORS, responses
from millnet.api.params import INT32_MAX, ObjectId, parse_time
from millnet.commands import MAX_TIMEOUT_S, CommandService, Requester
from millnet.registry.commands import CommandFilter, CommandRecord

router = APIRouter(tags=["commands"])

#: Four non-empty levels; names the registry would refuse answer 404 (no such device exists).
DEVICE_PATTERN = r"^[^/]+/[^/]+/[^/]+/[^/]+$"
ResultName = Literal["pending", "confirmed", "failed", "timeout", "refused"]
Value = bool | int | float | str


class CommandIn(BaseModel):
    device: str = Field(pattern=DEVICE_PATTERN, max_length=1000,
                        description="The device's path: site/area/line/device",
                        examples=["Suzhou/Utilities/Water/Pump-1"])
    point: str = Field(min_length=1, max_length=200, description="The point's name",
                       examples=["FrequencySetpoint"])
    value: Value = Field(description="The value to write; must fit the point's datatype (400 "
                                     "naming `value` otherwise)", examples=[42.5])
    timeout_s: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_S,
                             description="Seconds to wait for the confirmation")
    tenant_id: int | None = Field(
        default=None, ge=1, le=INT32_MAX,
        description="The device's tenant: a tenant token's own by default; a node-wide token "
                    "must name one (403 otherwise)")


class CommandOut(BaseModel):
    id: int
    tenant_id: int | None
    token_id: int | None = Field(description="The API token that sent the command")
    token_name: str | None
    role: str | None
    requested_at: datetime
    device: str
    point: str
    series_id: int | None
    source: str | None = Field(description="The source that wrote it")
    old_value: Value | None = Field(description="The last stored value before the write")
    new_value: Value | None
    result: ResultName = Field(
        description="confirmed: read back or reported with the value written; failed: the "
                    "device's reason in detail; timeout: no confirmation in time; refused: "
                    "not sent (see detail); pending: not answered yet")
    detail: str
    finished_at: datetime | None
    confirmed_at: datetime | None

    @classmethod
    def of(cls, r: CommandRecord) -> CommandOut:
        return cls(id=r.id, tenant_id=r.tenant_id, token_id=r.token_id, token_name=r.token_name,
                   role=r.role, requested_at=r.requested_at, device=r.device, point=r.point,
                   series_id=r.series_id, source=r.source, old_value=r.old_value,
                   new_value=r.new_value, result=r.result, detail=r.detail,
                   finished_at=r.finished_at, confirmed_at=r.confirmed_at)


def _service(request: Request) -> CommandService:
    service: CommandService = request.app.state.commands
    return service


def _requester(caller: Caller) -> Requester:
    return Requester(caller.token_id, caller.tenant_id, caller.role)


def _time(raw: str | None, field: str) -> datetime | None:
    if raw is None:
        return None
    ns = parse_time(raw, field)
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000)


@router.post("/commands", response_model=CommandOut,
             summary="Write a point (operators, admins) and wait for its confirmation",
             responses=responses(*AUTH_ERRORS, 400, 404, 409))
async def write_point(request: Request, caller: Viewer, body: CommandIn) -> CommandOut:
    record = await _service(request).write(
        _requester(caller), body.device, body.point, body.value, body.timeout_s, body.tenant_id)
    return CommandOut.of(record)


@router.get("/commands", response_model=list[CommandOut],
            summary="The audit of commands, newest first",
            responses=responses(*AUTH_ERRORS, 400, 404))
async def list_commands(
    request: Request, caller: Viewer,
    device: Annotated[str | None, Query(max_length=1000, description="site/area/line/device")]
    = None,
    point: Annotated[str | None, Query(max_length=1000)] = None,
    user: Annotated[str | None, Query(max_length=200, description="The token's name")] = None,
    result: ResultName | None = None,
    start: Annotated[str | None, Query(description="Requested at or after (ISO 8601 or epoch "
                                                   "ms)")] = None,
    end: Annotated[str | None, Query(description="Requested before")] = None,
    before: Annotated[int | None, Query(ge=1, le=INT32_MAX,
                                        description="Ids below this one (the next page)")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tenant_id: Annotated[int | None, Query(ge=1, le=INT32_MAX,
                                           description="Only this tenant's commands")] = None,
) -> list[CommandOut]:
    f = CommandFilter(tenant_id=tenant_id, device=device, point=point, user=user, result=result,
                      start=_time(start, "start"), end=_time(end, "end"), before=before,
                      limit=limit)
    return [CommandOut.of(r) for r in await _service(request).list(_requester(caller), f)]


@router.get("/commands/{command_id}", response_model=CommandOut, summary="One command",
            responses=responses(*AUTH_ERRORS, 404))
async def get_command(request: Request, caller: Viewer, command_id: ObjectId) -> CommandOut:
    return CommandOut.of(await _service(request).get(_requester(caller), command_id))
