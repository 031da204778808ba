"""HTTP ingest (issue 11, scope 4): ``POST /api/v1/ingest`` for devices that can only POST, and
the device tokens that authenticate them (``/api/v1/device-tokens``, admins).

The body is an MQTT JSON telemetry payload, byte for byte (one sample, one timestamp with many
values, or an array of either; :mod:`millnet.protocols.json_telemetry`), checked by the same
decoder. The device path plays the topic's part: the token's device, or ``?device=site/area/
line/device`` for a token bound to its tenant only. The answer is 202 once the samples are
committed; 413 beyond ``ingest.max_payload_bytes``; 503 with ``Retry-After`` when the pipeline
is full (nothing was taken: send again later); 400 naming what was wrong, counted on
``/metrics`` (``millnet_ingest_rejected_total``) as MQTT rejections are.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from millnet.api.auth import Admin, bearer_token
from millnet.api.context import Ctx
from millnet.api.errors import AUTH_ERRORS, ErrorBody, error_response, responses
from millnet.api.params import INT32_MAX, ObjectId
from millnet.api.schemas import NAME_PATTERN
from millnet.api.scope import tenant_of_request
from millnet.connectivity.adapter import Health, HealthState
from millnet.connectivity.json_mqtt import append_samples
from millnet.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RejectedMessage,
    Unauthenticated,
)
from millnet.ingest.binder import DevicePath
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import DataType, PointSpec
from millnet.model.limits import MAX_TS_MS, NAME_MAX, UNIT_MAX, ascii_digits
from millnet.protocols.json_telemetry import JsonSample, decode_payload, parse_topic
from millnet.registry.sources import DeviceTokenInfo, SourceStore
from millnet.sources import Binders

router = APIRouter(tags=["ingest"])

# Four levels, each a name of the registry: not blank (its first character is not a space), no
# control character, at most 200 characters (millnet.model.limits.name_problem).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_LEVEL = rf"[^\s{_CONTROL}/][^{_CONTROL}/]{{0,199}}"
DEVICE_PATTERN = rf"^{_LEVEL}/{_LEVEL}/{_LEVEL}/{_LEVEL}$"
_device_bearer = HTTPBearer(
    auto_error=False, scheme_name="deviceToken",
    description="A device token (`mnd_...`) made by `POST /api/v1/device-tokens`")


class IngestBusy(Exception):
    """The pipeline has no room now (503 with ``Retry-After``): nothing was taken."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HttpIngest:
    """``POST /api/v1/ingest``: MQTT JSON telemetry payloads over HTTP, from device tokens.

    The payload is decoded and checked by the MQTT JSON source's decoder
    (:func:`~millnet.protocols.json_telemetry.decode_payload`); the device path plays the topic's
    part. A request is answered once its samples are committed (the pipeline's acknowledgement).
    When the pipeline stays full for ``capacity_wait_s``, or ``max_waiting`` requests already
    wait, the request is refused (503) before anything is taken: the device keeps its data and
    retries, the node queues nothing unbounded."""

    name = "http"
    kind = "http"

    def __init__(self, pipeline: IngestPipeline, metrics: IngestMetrics, binders: Binders, *,
                 max_payload: int, max_waiting: int = 256, capacity_wait_s: float = 1.0,
                 commit_timeout_s: float = 30.0) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self._binders = binders
        self.max_payload = max_payload
        self._max_waiting = max_waiting
        self._capacity_wait_s = capacity_wait_s
        self._commit_timeout_s = commit_timeout_s
        self._waiting = 0
        self._health = Health(HealthState.UP, "POST /api/v1/ingest")

    def health(self) -> Health:
        return self._health

    async def run(self) -> None:  # nothing runs: requests come through the API
        await asyncio.Event().wait()

    def reject(self, reason: str, detail: str) -> None:
        self._health.count("rejected")
        self._metrics.reject(reason, f"http ingest: {detail}")

    async def ingest(self, tenant_id: int, device: DevicePath, payload: bytes) -> tuple[int, int]:
        """Store the payload's samples for ``device``; (accepted, refused points). Raises
        :class:`RejectedMessage` (counted) for a bad payload, :class:`IngestBusy` when full."""
        self._metrics.messages.labels("http").inc()
        self._health.count("requests")
        if self._waiting >= self._max_waiting:
            self._health.count("busy")
            raise IngestBusy(f"{self._waiting} requests wait for the pipeline")
        self._waiting += 1
        try:
            return await self._ingest(tenant_id, device, payload)
        finally:
            self._waiting -= 1

    async def _ingest(self, tenant_id: int, device: DevicePath,
                      payload: bytes) -> tuple[int, int]:
        try:
            async with asyncio.timeout(self._capacity_wait_s):
                await self._pipeline.wait_capacity()
        except TimeoutError:
            self._health.count("busy")
            raise IngestBusy("the ingest pipeline is full") from None
        where = "/".join(device)[:120]
        try:
            samples = decode_payload(payload, time.time_ns())
        except RejectedMessage as exc:
            self.reject(exc.reason, f"{where}: {exc}")
            raise
        binder = await asyncio.to_thread(self._binders.for_tenant, tenant_id)
        ids = binder.known(device)
        missing = {s.point: s for s in samples if s.point not in ids}
        refused = 0
        if missing:
            try:
                binding = await binder.bind(device, [_point_spec(s) for s in missing.values()])
            except RejectedMessage as exc:
                self.reject(exc.reason, f"{where}: {exc}")
                raise
            for refusal in binding.refused:
                self.reject(refusal.reason, f"{where}: {refusal.detail}")
            refused = len(binding.refused)
            ids = {**ids, **binding.ids}
        count = append_samples(self._pipeline, ids, samples)
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pipeline.appended(count)

        def ack() -> None:
            if not committed.done():
                committed.set_result(None)

        self._pipeline.add_ack(ack)
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                await asyncio.shield(committed)
        except TimeoutError:
            # Taken, not yet stored (a store outage): the device's retry may store it twice.
            self._health.count("busy")
            raise IngestBusy("the telemetry store did not commit in time", 5) from None
        self._health.last_data_at = time.time()
        self._health.count("samples", count)
        return count, refused


def _point_spec(sample: JsonSample) -> PointSpec:
    datatype = DataType.STRING if isinstance(sample.value, str) else DataType.DOUBLE
    return PointSpec(sample.point, datatype, unit=sample.unit)


def parse_device(text: str, field: str = "device") -> DevicePath:
    """``site/area/line/device`` checked as an MQTT JSON topic's levels are."""
    try:
        path = parse_topic(f"x/{text}", "x")
    except RejectedMessage as exc:
        raise InvalidInput(str(exc), field) from None
    return path.site, path.area, path.line, path.device


# -- device tokens ---------------------------------------------------------------------------------
class DeviceTokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    device: str | None = Field(default=None, pattern=DEVICE_PATTERN, max_length=1000,
                               description="site/area/line/device: the only device the token "
                                           "may send for (none: any device of the tenant)")
    tenant_id: int | None = Field(default=None, ge=1, le=INT32_MAX,
                                  description="Defaults to the caller's tenant; a node-wide "
                                              "token must name one (403 otherwise)")


class DeviceTokenOut(BaseModel):
    id: int
    tenant_id: int
    name: str
    device: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: DeviceTokenInfo) -> DeviceTokenOut:
        return cls(id=t.id, tenant_id=t.tenant_id, name=t.name, device=t.device, prefix=t.prefix,
                   created_at=t.created_at, revoked_at=t.revoked_at)


class DeviceTokenCreated(BaseModel):
    token: str = Field(description="The token; shown in this answer only")
    info: DeviceTokenOut


class IngestAccepted(BaseModel):
    accepted: int = Field(description="Samples committed")
    refused_points: int = Field(description="New points refused (bad name, quota), counted")


def _store(request: Request) -> SourceStore:
    store: SourceStore = request.app.state.source_store
    return store


@router.post("/device-tokens", response_model=DeviceTokenCreated,
             status_code=status.HTTP_201_CREATED,
             summary="Create a device token for HTTP ingest; its secret is in this answer only",
             responses=responses(*AUTH_ERRORS, 400, 404))
def create_device_token(request: Request, ctx: Ctx, caller: Admin,
                        body: DeviceTokenIn) -> DeviceTokenCreated:
    tenant = tenant_of_request(ctx, caller, body.tenant_id)
    if body.device is not None:
        parse_device(body.device)
    plaintext, info = _store(request).create_device_token(tenant, body.name, body.device,
                                                          caller.token_id)
    return DeviceTokenCreated(token=plaintext, info=DeviceTokenOut.of(info))


@router.get("/device-tokens", response_model=list[DeviceTokenOut],
            summary="Device tokens of the tenant", responses=responses(*AUTH_ERRORS, 404))
def list_device_tokens(
    request: Request, ctx: Ctx, caller: Admin,
    tenant_id: int | None = Query(default=None, ge=1, le=INT32_MAX,
                                  description="Defaults to the caller's tenant; a node-wide "
                                              "token must name one (403 otherwise)"),
) -> list[DeviceTokenOut]:
    tenant = tenant_of_request(ctx, caller, tenant_id)
    return [DeviceTokenOut.of(t) for t in _store(request).list_device_tokens(tenant)]


@router.delete("/device-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, summary="Revoke a device token",
               responses=responses(*AUTH_ERRORS, 404))
def revoke_device_token(request: Request, caller: Admin, token_id: ObjectId) -> Response:
    store = _store(request)
    info = store.get_device_token(token_id)
    if not caller.sees(info.tenant_id):
        raise NotFound(f"device token {token_id} not found")
    store.revoke_device_token(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- ingest ----------------------------------------------------------------------------------------
_MSGSPEC_PATH = re.compile(r"at `\$(\S*)`")


def _bad_field(message: str) -> str:
    """``body`` and, when the decoder said where, the path in it (``body[2].value``)."""
    found = _MSGSPEC_PATH.search(message)
    return f"body{found.group(1)}" if found else "body"


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (not read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and ascii_digits(declared, 19) and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# The payload forms the decoder takes (millnet.protocols.json_telemetry), stated for clients.
# A string ``ts`` is RFC 3339 with an offset; the pattern keeps its year within 1971..2261, so
# that every offset stays within the decoder's range (1970 to 2262-04-11).
_YEAR = r"(197[1-9]|19[89][0-9]|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
_TS_TEXT = (rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]"
            r":[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
_VALUE = {"type": ["number", "boolean", "string", "null"],
          "description": "number; boolean (stored as 0/1); string (a text sample); null (a "
                         "bad-quality gap)"}
_COMMON: dict[str, Any] = {
    "ts": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TS_MS},
                     {"type": "string", "format": "date-time", "pattern": _TS_TEXT},
                     {"type": "null"}],
           "description": "Epoch milliseconds or RFC 3339; absent: the time received"},
    "quality": {"enum": ["good", "uncertain", "bad"], "default": "good"},
    "unit": {"type": ["string", "null"], "maxLength": UNIT_MAX, "pattern": r"^[^\x00]*$"},
}
_POINT = {"type": "string", "maxLength": NAME_MAX, "pattern": NAME_PATTERN}
_ONE = {"type": "object", "additionalProperties": False, "required": ["point", "value"],
        "properties": {"point": _POINT, "value": _VALUE, "values": {"type": "null"},
                       **_COMMON}}
_MANY = {"type": "object", "additionalProperties": False, "required": ["values"],
         "properties": {"point": {"type": "null"}, "values": {
             "type": "object", "propertyNames": _POINT, "additionalProperties": _VALUE},
             **_COMMON}}
PAYLOAD_SCHEMA: dict[str, Any] = {
    "description": "An MQTT JSON telemetry payload: one sample {point, value, ts?, quality?, "
                   "unit?}, one time and many points {ts?, values: {point: value}}, or an "
                   "array of either (docs/sources.md)",
    "anyOf": [_ONE, _MANY, {"type": "array", "items": {"anyOf": [_ONE, _MANY]}}]}

_INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Body larger than ingest.max_payload_bytes"},
    503: {"model": ErrorBody, "description": "The pipeline is full (see Retry-After); nothing "
                                             "was taken"},
}


@router.post(
    "/ingest", status_code=status.HTTP_202_ACCEPTED, response_model=IngestAccepted,
    summary="Telemetry from a device (MQTT JSON payload forms); answered once committed",
    responses={**responses(400, 401, 403, 422, 500), **_INGEST_ERRORS},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": PAYLOAD_SCHEMA}}}})
async def ingest(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_device_bearer)],
    device: str | None = Query(default=None, pattern=DEVICE_PATTERN, max_length=1000,
                               description="site/area/line/device; required unless the token "
                                           "is bound to a device (then it must match)"),
) -> Response:
    http: HttpIngest = request.app.state.http_ingest
    store = _store(request)
    token = bearer_token(request.headers.get("authorization"))
    principal = await run_in_threadpool(store.verify_device_token, token)
    if principal is None:
        raise Unauthenticated("invalid or revoked device token")
    if principal.device is not None and device is not None and device != principal.device:
        raise PermissionDenied("the token is bound to another device")
    path_text = device or principal.device
    if path_text is None:
        raise InvalidInput("device: required for a token not bound to a device", "device")
    path = parse_device(path_text)
    payload = await _read_limited(request, http.max_payload)
    if payload is None:
        http.reject("oversized", f"{path_text[:120]}: more than {http.max_payload} bytes")
        return error_response(413, "payload_too_large",
                              f"body larger than {http.max_payload} bytes")
    try:
        accepted, refused = await http.ingest(principal.tenant_id, path, payload)
    except RejectedMessage as exc:
        raise InvalidInput(str(exc), _bad_field(str(exc))) from None
    except IngestBusy as exc:
        response = error_response(503, "busy", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    body = IngestAccepted(accepted=accepted, refused_points=refused)
    return Response(body.model_dump_json(), status_code=202, media_type="application/json")
