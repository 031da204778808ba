"""Write-back commands (issue 11, scope 5): one service writes a device's point through whichever
adapter serves it, confirms the write, and audits every attempt.

A command names a device (``site/area/line/device``), a point and a value. The service:

1. refuses, and audits the refusal, unless the caller is an operator or an admin (403), the
   device and point exist in the caller's tenant (404, as for anything of another tenant), the
   value fits the point's datatype (400 naming ``value``) and a running source says the point is
   writable (409);
2. reads the point's last stored value (the audit's old value) and records the command as
   ``pending`` before anything is sent;
3. writes through the adapter (:meth:`SourceHost.find_writer`: OPC UA and Modbus write and read
   back; the Sparkplug host sends a DCMD/NCMD and waits for the device's next report);
4. sets the final result once: ``confirmed`` (the value read back, or reported, is the value
   written), ``failed`` (with the device's reason) or ``timeout`` (no confirmation within the
   command's timeout).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from millnet.connectivity.adapter import Writable, WriteRequest, WriteResult
from millnet.connectivity.specs import parse_device
from millnet.errors import Conflict, InvalidInput, MillnetError, NotFound, PermissionDenied
from millnet.model import AssetKind, DataType
from millnet.registry import Registry, Role
from millnet.registry.commands import Attempt, CommandFilter, CommandRecord, CommandStore, Scalar
from millnet.registry.records import Point
from millnet.sources import SourceHost
from millnet.telemetry.base import TelemetryStore

MAX_TIMEOUT_S = 60.0
_WRITERS = (Role.OPERATOR, Role.ADMIN)
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT8: (-(2**7), 2**7 - 1), DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1), DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT8: (0, 2**8 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.UINT32: (0, 2**32 - 1), DataType.UINT64: (0, 2**64 - 1),
    DataType.DATETIME: (0, 2**63 - 1),  # epoch milliseconds
}
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: the API token's id, name, tenant (None: node-wide) and role."""

    token_id: int | None
    tenant_id: int | None
    role: Role
    name: str | None = None


def check_value(datatype: DataType, value: Scalar) -> Scalar:
    """``value`` as the point's datatype holds it; InvalidInput naming ``value`` if it does not
    fit (the wrong JSON type, out of range, not finite, a fraction for an integer)."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"value: {why} for a {datatype.value} point", "value")

    if datatype.is_text:
        if not isinstance(value, str):
            raise bad("expected text")
        return value
    if datatype is DataType.BOOLEAN:
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if isinstance(value, bool | str):
        raise bad("expected a number")
    bounds = _INT_RANGE.get(datatype)
    if bounds is not None:
        if isinstance(value, float):
            if not value.is_integer():
                raise bad("expected an integer")
            value = int(value)
        if not bounds[0] <= value <= bounds[1]:
            raise bad(f"expected {bounds[0]}..{bounds[1]}")
        return value
    if datatype not in (DataType.FLOAT, DataType.DOUBLE):
        raise bad("this datatype cannot be written")
    number = float(value)
    if not math.isfinite(number):
        raise bad("expected a finite number")
    if datatype is DataType.FLOAT and abs(number) > _FLOAT32_MAX:
        raise bad("beyond the float32 range")
    return number


def same_value(read: Scalar | None, written: Scalar) -> bool:
    """Whether a value read back (or reported) is the value written; floats within float32's
    precision (a PLC's REAL reads back as the float32 nearest the value written)."""
    if read is None:
        return False
    if isinstance(read, str) or isinstance(written, str):
        return read == written
    if isinstance(read, float) or isinstance(written, float):
        return math.isclose(float(read), float(written), rel_tol=1e-6, abs_tol=1e-9)
    return int(read) == int(written)


def outcome(result: WriteResult, value: Scalar, elapsed_s: float,
            timeout_s: float) -> tuple[str, str]:
    """The final result and its detail of a write the adapter answered."""
    if result.ok:
        if result.read_back is None:
            return "failed", f"written, but not confirmed: {result.detail or 'no read-back'}"
        if same_value(result.read_back, value):
            return "confirmed", result.detail
        return "failed", f"the device holds {result.read_back!r} after writing {value!r}"
    if elapsed_s >= timeout_s:
        return "timeout", result.detail or f"no confirmation within {timeout_s:g} s"
    return "failed", result.detail


class CommandService:
    """Resolves, authorizes, writes, confirms and audits commands. Used from the event loop."""

    def __init__(self, registry: Registry, store: TelemetryStore, audit: CommandStore,
                 host: SourceHost | None, extra_writers: Sequence[Writable] = ()) -> None:
        self._registry = registry
        self._store = store
        self.audit = audit
        self._host = host
        # Writers that are not hosted (the Sparkplug host of an in-process transport).
        self._extra = tuple(extra_writers)

    # -- writing -----------------------------------------------------------------------------
    async def write(self, who: Requester, device: str, point: str, value: Scalar,
                    timeout_s: float = 5.0, tenant_id: int | None = None) -> CommandRecord:
        """Write and confirm; refusals are audited and raised (PermissionDenied, NotFound,
        InvalidInput, Conflict); the final result is in the returned record."""
        name = who.name
        if name is None and who.token_id is not None:
            name = await asyncio.to_thread(self._token_name, who.token_id)
        attempt = Attempt(device, point, value, tenant_id=who.tenant_id,
                          token_id=who.token_id, token_name=name, role=who.role.value)
        try:
            attempt, target, writer, value = await asyncio.to_thread(
                self._resolve, who, attempt, tenant_id)
        except MillnetError as exc:
            await asyncio.to_thread(self.audit.record, attempt, "refused", str(exc))
            raise
        pending = await asyncio.to_thread(self.audit.record, attempt)
        request = WriteRequest(target, point, value, min(timeout_s, MAX_TIMEOUT_S))
        started = time.monotonic()
        try:
            # The adapter keeps to the timeout itself; this bound only guards against one
            # that does not.
            async with asyncio.timeout(request.timeout_s + 2.0):
                answer = await writer.write(request)
        except TimeoutError:
            answer = WriteResult(False, f"no answer within {request.timeout_s:g} s")
        except asyncio.CancelledError:
            self.audit.finish(pending.id, "failed", "cancelled before the device answered")
            raise
        result, detail = outcome(answer, value, time.monotonic() - started, request.timeout_s)
        confirmed_at = datetime.now(UTC) if result == "confirmed" else None
        return await asyncio.to_thread(self.audit.finish, pending.id, result,  # type: ignore[arg-type]
                                       detail, confirmed_at)

    def _token_name(self, token_id: int) -> str | None:
        try:
            return self._registry.get_token(token_id).name
        except NotFound:
            return None

    def _resolve(self, who: Requester, attempt: Attempt, tenant_id: int | None,
                 ) -> tuple[Attempt, tuple[str, str, str, str], Writable, Scalar]:
        """Blocking: authorize, find the device, point, writer and old value."""
        if who.role not in _WRITERS:
            raise PermissionDenied("writing a point requires the operator or admin role")
        tenant = self._tenant(who, tenant_id)
        attempt = replace(attempt, tenant_id=tenant)
        try:
            path = parse_device(attempt.device)
        except ValueError:
            raise NotFound(f"device {attempt.device[:200]!r} not found") from None
        found = self._point(tenant, path, attempt.point)
        attempt = replace(attempt, series_id=found.series_id)
        assert attempt.new_value is not None
        value = check_value(found.datatype, attempt.new_value)
        writer = self._writer(path, attempt.point)
        if writer is None:
            raise Conflict(f"{attempt.device}/{attempt.point} is not writable: no running "
                           "source marks it writable")
        last = self._store.last_values([found.series_id]).get(found.series_id)
        old: Scalar | None = None
        if last is not None:
            old = last.text if found.datatype.is_text else last.value
        source = str(getattr(writer, "name", type(writer).__name__))[:64]
        return replace(attempt, source=source, old_value=old), path, writer, value

    def _tenant(self, who: Requester, tenant_id: int | None) -> int:
        if who.tenant_id is not None:
            if tenant_id is not None and tenant_id != who.tenant_id:
                raise NotFound(f"tenant {tenant_id} not found")
            return who.tenant_id
        if tenant_id is None:
            raise PermissionDenied("a node-wide token must name the tenant (tenant_id)")
        self._registry.get_tenant(tenant_id)  # NotFound
        return tenant_id

    def _point(self, tenant_id: int, path: tuple[str, str, str, str], point: str) -> Point:
        tenant = self._registry.get_tenant(tenant_id)
        where = "/".join(path)
        try:
            asset = self._registry.find_asset(tenant_id, f"{tenant.name}/{where}")
        except NotFound:
            raise NotFound(f"device {where!r} not found") from None
        if asset.kind is not AssetKind.DEVICE:
            raise NotFound(f"device {where!r} not found")
        for p in self._registry.list_points(tenant_id, asset.id):
            if p.name == point:
                return p
        raise NotFound(f"point {point[:200]!r} of device {where!r} not found")

    def _writer(self, path: tuple[str, str, str, str], point: str) -> Writable | None:
        found = self._host.find_writer(path, point) if self._host is not None else None
        if found is not None:
            return found
        return next((w for w in self._extra if w.writable(path, point)), None)

    # -- reading the audit ---------------------------------------------------------------------
    async def get(self, who: Requester, command_id: int) -> CommandRecord:
        record = await asyncio.to_thread(self.audit.get, command_id)
        if who.tenant_id is not None and record.tenant_id != who.tenant_id:
            raise NotFound(f"command {command_id} not found")
        return record

    async def list(self, who: Requester, f: CommandFilter) -> list[CommandRecord]:
        if who.tenant_id is not None:
            if f.tenant_id is not None and f.tenant_id != who.tenant_id:
                raise NotFound(f"tenant {f.tenant_id} not found")
            f = replace(f, tenant_id=who.tenant_id)
        return await asyncio.to_thread(self.audit.list, f)
