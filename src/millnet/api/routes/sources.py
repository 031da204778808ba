"""Field sources (issue 11): list them with their health; admins add and remove them at runtime.

A source added here is stored in the registry and started at once, and again on every node
start; a source of the node's TOML (or its ``[mqtt]`` section) is listed but read-only (409).
Tenant tokens see and manage their tenant's sources only; a node-wide token sees all, and a
node-wide admin names the tenant a new source's data belong to (``tenant_id``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Admin, Caller, Viewer
from millnet.api.changes import config_changed
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, ErrorBody, responses
from millnet.api.params import INT32_MAX
from millnet.api.scope import tenant_of_request
from millnet.connectivity.specs import SOURCE_NAME
from millnet.errors import InvalidInput, NotFound
from millnet.sources import KINDS, SourceHost, SourceInfo, parse_spec, spec_adapter

router = APIRouter(tags=["sources"])

SourceName = Annotated[str, Path(pattern=SOURCE_NAME, description="The source's name")]
#: Spec fields naming files on the node: the node's operator sets them in its TOML, the API
#: may not (they would let a token read the node's files).
_LOCAL_FILES = ("register_map_csv", "server_certificate")


class HealthOut(BaseModel):
    state: Literal["starting", "up", "degraded", "down", "stopped"]
    detail: str
    since: float = Field(description="Unix seconds the state was entered")
    last_data_at: float | None = Field(description="Unix seconds of the last sample")
    counters: dict[str, int]


class SourceOut(BaseModel):
    name: str
    kind: str = Field(description="opcua, modbus, mqtt-json, sparkplug or http")
    enabled: bool
    origin: Literal["config", "api"] = Field(
        description="config: the node's TOML (read-only here); api: added through the API")
    tenant_id: int
    health: HealthOut
    spec: dict[str, Any] | None = Field(
        default=None, description="The source's configuration (secrets masked); in "
                                  "GET /sources/{name} only")

    @classmethod
    def of(cls, info: SourceInfo) -> SourceOut:
        h = info.health
        return cls(name=info.name, kind=info.kind, enabled=info.enabled, origin=info.origin,
                   tenant_id=info.tenant_id, spec=info.spec, health=HealthOut(
                       state=h.state.value, detail=h.detail, since=h.since,
                       last_data_at=h.last_data_at, counters=h.counters))


def spec_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's schema (the union of the spec kinds) and the components it refers to.

    What the API refuses whatever its value is left out: the fields naming files on the node
    (a body that has one does not match the document), and so OPC UA security other than
    ``none``, which needs the server's certificate file."""
    schema = spec_adapter(KINDS).json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    for spec in defs.values():
        props = spec.get("properties", {})
        for key in _LOCAL_FILES:
            props.pop(key, None)
        if "server_certificate" in _LOCAL_FILES and "security" in props:
            props["security"] = {**props["security"], "enum": ["none"],
                                 "description": "sign_encrypt needs a server certificate "
                                                "file: configure it in the node's TOML"}
    return schema, defs


def _host(request: Request) -> SourceHost:
    host: SourceHost = request.app.state.sources
    return host


def _visible(host: SourceHost, caller: Caller, name: str) -> SourceInfo:
    info = host.get(name)
    if not caller.sees(info.tenant_id):
        raise NotFound(f"source {name!r} not found")
    return info


@router.get("/sources", response_model=list[SourceOut], summary="Sources and their health",
            responses=responses(*AUTH_ERRORS))
async def list_sources(request: Request, caller: Viewer) -> list[SourceOut]:
    return [SourceOut.of(i) for i in _host(request).list() if caller.sees(i.tenant_id)]


@router.get("/sources/{name}", response_model=SourceOut, summary="One source",
            responses=responses(*AUTH_ERRORS, 404))
async def get_source(request: Request, caller: Viewer, name: SourceName) -> SourceOut:
    return SourceOut.of(_visible(_host(request), caller, name))


@router.post(
    "/sources", response_model=SourceOut, status_code=status.HTTP_201_CREATED,
    summary="Add a source: stored, started now and on every node start",
    responses={**responses(*AUTH_ERRORS, 404, 409), 400: {
        "model": ErrorBody, "description": "A spec that cannot work, ``field`` naming the "
        "entry (``registers[3].address``): besides what the schema states, a spec is checked "
        "as a whole (registers that overlap or do not fit the address space, points mapped "
        "twice, a register's poll group that is not among ``poll_groups``, "
        "``backoff_max_s`` below ``backoff_initial_s``, a deadband without its type or a "
        "percent deadband above 100, a username without a password, node ids and device "
        "paths that do not parse)"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/SourceSpec"}}}}})
async def add_source(
    request: Request, ctx: Ctx, caller: Admin,
    tenant_id: int | None = Query(default=None, ge=1, le=INT32_MAX,
                                  description="The tenant the source's data belong to: "
                                              "defaults to the caller's; a node-wide token "
                                              "must name one (403 otherwise)"),
) -> SourceOut:
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body: not JSON: {exc}", "body") from None
    if isinstance(data, dict):
        for key in _LOCAL_FILES:
            if data.get(key) is not None:
                raise InvalidInput(f"{key}: files on the node are named in its TOML, not "
                                   "through the API", key)
    spec = parse_spec(data)
    tenant = await run_in_threadpool(tenant_of_request, ctx, caller, tenant_id)
    created = SourceOut.of(await _host(request).create(spec, tenant, caller.token_id))
    config_changed(request, caller, "source", "created", spec.name, tenant_id=tenant)
    return created


@router.delete("/sources/{name}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, summary="Stop and remove a source added through the API",
               responses=responses(*AUTH_ERRORS, 404, 409))
async def remove_source(request: Request, caller: Admin, name: SourceName) -> Response:
    host = _host(request)
    _visible(host, caller, name)
    await host.delete(name)
    config_changed(request, caller, "source", "deleted", name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
