"""Composition of traceability (issue 15): the EPCIS repository on the node's database, the
tracer with its view of production conditions (telemetry and alarms of the machines at a read
point) and of other enterprises' nodes (through the identifier hierarchy), the emitter of the
node's own events, and their API routes. Part of the composition root (``node.py`` calls it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from millnet.alarms.records import AlarmFilter
from millnet.alarms.store import AlarmStore
from millnet.config import Settings
from millnet.errors import MillnetError, NotFound
from millnet.identifiers.hierarchy.client import Server
from millnet.identifiers.hierarchy.resolver import resolve_following
from millnet.model import AssetKind
from millnet.registry import Asset, Registry
from millnet.telemetry.base import TelemetryStore
from millnet.trace.emit import Emitter, LineCounter
from millnet.trace.graph import Tracer
from millnet.trace.remote import HttpRemote
from millnet.trace.settings import TraceSection
from millnet.trace.store import EpcisStore

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)
#: The handle value type that carries the URL of a node's trace API (docs/traceability.md).
TRACE_TYPE: Final = "MN_TRACE"
ASSET_URN: Final = "urn:millnet:asset:"
ISA95_URN: Final = "urn:millnet:isa95:"
MAX_SERIES: Final = 40


@dataclass
class Tracing:
    store: EpcisStore
    tracer: Tracer
    emitter: Emitter | None = None


def build_tracing(settings: Settings, registry: Registry, telemetry: TelemetryStore,
                  tenant_id: int) -> Tracing:
    """The repository (on the registry's engine), the tracer and, with ``[trace] emit``, the
    emitter; starts nothing."""
    store = EpcisStore(registry.engine)
    section: TraceSection = settings.trace
    alarms = AlarmStore(registry.engine)
    tracer = Tracer(store, node_name=settings.node.name,
                    own_prefixes=registry.identifier_prefixes,
                    remote=HttpRemote(locator(section), token=peer_token(section),
                                      timeout=section.timeout_s),
                    conditions=Conditions(registry, telemetry, alarms))
    emitter = None
    if section.emit:
        emitter = Emitter(store, lambda: line_counters(registry, settings, telemetry),
                          prefix_of=lambda t: next(iter(registry.identifier_prefixes(t)), None),
                          batch_size=section.batch_size)
    return Tracing(store, tracer, emitter)


def mount(app: FastAPI, tracing: Tracing, prefix: str) -> None:
    from millnet.api.routes import epcis

    app.state.epcis = tracing.store
    app.state.tracer = tracing.tracer
    app.include_router(epcis.router, prefix=prefix)


def peer_token(section: TraceSection) -> Any:
    def token(key: str) -> str | None:
        prefix = key.partition("/")[0]
        for peer in section.peers:
            if peer.prefix == prefix and peer.token is not None:
                return peer.token.get_secret_value()
        return section.token.get_secret_value() if section.token is not None else None
    return token


def locator(section: TraceSection) -> Any:
    """Configured peers first; else the MN_TRACE value of the identifier's handle, or of its
    prefix's handle (``0.NA/<prefix>``), resolved from ``[trace] resolver``."""
    server = None
    if section.resolver:
        host, _, port = section.resolver.rpartition(":")
        server = Server(host or "127.0.0.1", int(port), int(port))

    async def locate(key: str) -> str | None:
        prefix = key.partition("/")[0]
        for peer in section.peers:
            if peer.prefix == prefix and peer.url:
                return peer.url
        if server is None:
            return None
        for handle in (key, f"0.NA/{prefix}"):
            try:
                async with asyncio.timeout(section.timeout_s):
                    body = await resolve_following(handle, server, types=(TRACE_TYPE,))
            except (MillnetError, OSError, TimeoutError) as exc:
                log.debug("trace: %s did not resolve: %s", handle, exc)
                continue
            for value in getattr(body, "values", ()):
                if value.type == TRACE_TYPE:
                    return str(value.data.decode("utf-8"))
        return None

    return locate


class Conditions:
    """The production conditions at a read point naming an asset (``urn:millnet:asset:<id>``
    or ``urn:millnet:isa95:<path>``): per point of its machines, count/min/avg/max over the
    window, and the alarms of those machines updated in it."""

    def __init__(self, registry: Registry, telemetry: TelemetryStore,
                 alarms: AlarmStore) -> None:
        self._registry = registry
        self._telemetry = telemetry
        self._alarms = alarms
        self._assets: dict[tuple[int, str], tuple[float, Asset | None]] = {}

    def _asset(self, tenant_id: int, read_point: str) -> Asset | None:
        """The asset a read point names, remembered for a minute (every node of a trace asks,
        and most read points name no asset of this node)."""
        now = time.monotonic()
        known = self._assets.get((tenant_id, read_point))
        if known is not None and known[0] > now:
            return known[1]
        if len(self._assets) > 10_000:
            self._assets.clear()
        asset = self._lookup(tenant_id, read_point)
        self._assets[tenant_id, read_point] = (now + 60.0, asset)
        return asset

    def _lookup(self, tenant_id: int, read_point: str) -> Asset | None:
        try:
            if read_point.startswith(ASSET_URN):
                asset = self._registry.get_asset(int(read_point[len(ASSET_URN):]))
                return asset if asset.tenant_id == tenant_id else None
            if read_point.startswith(ISA95_URN):
                return self._registry.find_asset(tenant_id, read_point[len(ISA95_URN):])
        except (NotFound, ValueError):
            return None
        return None

    def __call__(self, tenant_id: int, read_point: str, start_us: int,
                 end_us: int) -> dict[str, Any] | None:
        asset = self._asset(tenant_id, read_point)
        if asset is None:
            return None
        devices = [asset] if asset.kind is AssetKind.DEVICE else [
            d for d in self._registry.list_devices(tenant_id)
            if d.path.startswith(asset.path + "/")]
        points = [p for d in devices for p in self._registry.list_points(tenant_id, d.id)]
        points = points[:MAX_SERIES]
        start_ns, end_ns = start_us * 1000, (max(end_us, start_us) + 1) * 1000  # end included
        width = 10 ** math.ceil(math.log10(max(end_ns - start_ns, 1)))  # one or two buckets
        summary: dict[int, dict[str, float]] = {}
        if points:
            buckets = self._telemetry.query_buckets([p.series_id for p in points], start_ns,
                                                    end_ns, width)
            for b in buckets:
                s = summary.setdefault(b.series_id, {"count": 0, "sum": 0.0, "min": b.min,
                                                     "max": b.max})
                s["count"] += b.count
                s["sum"] += b.avg * b.count
                s["min"] = min(s["min"], b.min)
                s["max"] = max(s["max"], b.max)
        by_id = {d.id: d for d in devices}
        telemetry = [
            {"device": by_id[p.device_id].path, "point": p.name, "unit": p.unit,
             "count": int(agg["count"]), "min": agg["min"], "max": agg["max"],
             "avg": agg["sum"] / agg["count"] if agg["count"] else None}
            for p in points if (agg := summary.get(p.series_id)) is not None]
        found = self._alarms.list_alarms(AlarmFilter(
            tenant_id=tenant_id, asset_ids=tuple(by_id), limit=100,
            since=datetime.fromtimestamp(start_us / 1e6, UTC),
            until=datetime.fromtimestamp(end_us / 1e6 + 1, UTC))) if by_id else []
        alarms = [{"id": a.id, "device": by_id[a.asset_id].path if a.asset_id in by_id
                   else a.asset_id, "rule": a.rule_name, "priority": a.priority.name.lower(),
                   "state": a.state.name.lower(), "message": a.message,
                   "updated_at": a.updated_at.isoformat()} for a in found]
        return {"asset": asset.path, "machines": [d.path for d in devices],
                "telemetry": telemetry, "alarms": alarms}


def line_counters(registry: Registry, settings: Settings,
                  telemetry: TelemetryStore) -> list[LineCounter]:
    """Per line: the sum of its machines' good-part counters now (the KPI's good point)."""
    out: list[LineCounter] = []
    good = settings.kpi.good_point
    for tenant in registry.list_tenants():
        devices = registry.list_devices(tenant.id)
        lines = [a for a in _lines(registry, tenant.id)]
        points = {p.device_id: p.series_id for p in registry.list_points(tenant.id)
                  if p.name == good}
        last = telemetry.last_values(list(points.values()))
        for line in lines:
            total = 0.0
            seen = False
            for d in devices:
                sid = points.get(d.id)
                if sid is not None and d.path.startswith(line.path + "/") and sid in last:
                    value = last[sid].value
                    if value is not None and not math.isnan(value):
                        total += value
                        seen = True
            if seen:
                out.append(LineCounter(tenant.id, line.id, line.path, total))
    return out


def _lines(registry: Registry, tenant_id: int) -> list[Asset]:
    out: list[Asset] = []
    stack = registry.list_children(tenant_id, None)
    while stack:
        asset = stack.pop()
        if asset.kind is AssetKind.LINE:
            out.append(asset)
        elif asset.kind is not AssetKind.DEVICE:
            stack.extend(registry.list_children(tenant_id, asset.id))
    return out


def start_tracing(tracing: Tracing, tg: asyncio.TaskGroup,
                  restarts: Any) -> list[asyncio.Task[None]]:
    """The emitter, supervised in the node's task group (nothing without ``[trace] emit``)."""
    from millnet.supervise import supervise

    if tracing.emitter is None:
        return []
    return [tg.create_task(supervise("trace emitter", tracing.emitter.run, restarts),
                           name="trace emitter")]
