"""What routes receive: the node's registry, telemetry store, metrics and the API's own helpers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from millnet.api.auth import Authenticator
from millnet.api.params import Limits
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry
from millnet.telemetry.base import TelemetryStore


class SeriesTenants:
    """Series id -> tenant id, remembered: a series never changes tenant, so only the first
    lookup of each id reaches the registry. Unknown ids are not remembered."""

    def __init__(self, registry: Registry, max_entries: int = 1_000_000) -> None:
        self._registry = registry
        self._max_entries = max_entries
        self._known: dict[int, int] = {}
        self._lock = threading.Lock()

    def lookup(self, series_ids: list[int]) -> dict[int, int]:
        known = self._known
        found = {sid: known[sid] for sid in series_ids if sid in known}
        missing = [sid for sid in series_ids if sid not in found]
        if missing:
            fetched = self._registry.points_tenant(missing)
            with self._lock:
                if len(known) + len(fetched) > self._max_entries:
                    known.clear()
                known.update(fetched)
            found.update(fetched)
        return found


@dataclass
class ApiContext:
    registry: Registry
    store: TelemetryStore
    metrics: IngestMetrics
    node_name: str
    role: str
    limits: Limits
    auth: Authenticator
    series_tenants: SeriesTenants = field(init=False)

    def __post_init__(self) -> None:
        self.series_tenants = SeriesTenants(self.registry)


async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.millnet
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]
