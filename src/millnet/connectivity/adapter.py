"""The one interface every field protocol implements (issue 11).

An **adapter** is a :class:`~millnet.connectivity.base.Source` (``run()`` connects, ingests and
reconnects until cancelled) that also reports its :class:`Health` and, where its protocol can
write, takes commands (:class:`Writable`). It is started and stopped as an async context manager
by the node (``millnet.sources``): entering starts ``run()`` under supervision (a failure is
logged, counted and restarted with backoff), leaving cancels it and waits for it to finish, so
adapters are added and removed while the node runs.

Samples go out through a :class:`FieldSink`, which binds the adapter's devices and points to
series ids in the registry (creating them on first sight, with the binder's checks and quotas)
and appends readings into the pipeline's open batch. Before reading or polling more, an adapter
awaits :meth:`FieldSink.capacity`: when the pipeline is full the adapter polls later or stops
reading, it never drops.

Every reading keeps its own timestamp (the device's or the server's when it has one, else the
time it was read), so a slow write never overwrites anything; a value the adapter could not read
is a sample with :attr:`Quality.BAD` (or ``UNCERTAIN``) and NaN, never an invented value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from millnet.ingest.binder import DevicePath, SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import PointSpec, Quality, TextSample


class HealthState(StrEnum):
    STARTING = "starting"  # not yet connected once
    UP = "up"  # connected, data flowing
    DEGRADED = "degraded"  # connected, but some devices or points fail (see detail)
    DOWN = "down"  # not connected; retrying with backoff
    STOPPED = "stopped"


@dataclass(slots=True)
class Health:
    """What an adapter tells the operator about itself (``GET /api/v1/sources``)."""

    state: HealthState = HealthState.STARTING
    detail: str = ""
    since: float = field(default_factory=time.time)  # unix seconds the state was entered
    last_data_at: float | None = None  # unix seconds of the last sample handed to the sink
    counters: dict[str, int] = field(default_factory=dict)  # polls, skipped_polls, errors...

    def enter(self, state: HealthState, detail: str = "") -> None:
        if state != self.state:
            self.since = time.time()
        self.state, self.detail = state, detail

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class Adapter(Protocol):
    """A field protocol's connection: ``run()`` until cancelled, ``health()`` any time."""

    name: str
    kind: str  # "mqtt-json", "sparkplug", "opcua", "modbus", ...

    async def run(self) -> None: ...

    def health(self) -> Health: ...


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Write ``value`` to a device's point (resolved by the command service to this adapter)."""

    device: DevicePath
    point: str
    value: float | int | bool | str
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What the device said: ``ok`` and, when the adapter could read it back, the value read
    (the confirmation); ``detail`` names what went wrong (a Modbus exception, an OPC UA status
    code, a timeout)."""

    ok: bool
    detail: str = ""
    read_back: float | int | bool | str | None = None


@runtime_checkable
class Writable(Protocol):
    """An adapter whose protocol can write to its devices (Sparkplug DCMD, OPC UA, Modbus)."""

    def writable(self, device: DevicePath, point: str) -> bool:
        """Whether this adapter serves ``device``/``point`` and the point may be written."""
        ...

    async def write(self, request: WriteRequest) -> WriteResult: ...


class FieldSink:
    """Where an adapter's readings go: bound to series ids, appended to the pipeline.

    Not thread-safe: call it from the node's event loop (an adapter whose library runs a thread
    hands readings over with ``loop.call_soon_threadsafe``)."""

    def __init__(self, source: str, pipeline: IngestPipeline, binder: SeriesBinder,
                 metrics: IngestMetrics) -> None:
        self.source = source
        self._pipeline = pipeline
        self._binder = binder
        self._metrics = metrics

    async def bind(self, device: DevicePath, specs: Sequence[PointSpec]) -> dict[str, int]:
        """Create or update ``device`` and its points; name -> series id for those accepted.

        A refused point (bad name, quota) is counted as a rejection and left out; a device that
        cannot be created raises :class:`RejectedMessage` (count it and go on with the other
        devices); :class:`~millnet.errors.StorageError` propagates (retry later)."""
        binding = await self._binder.bind(device, specs)
        for refusal in binding.refused:
            self._metrics.reject(refusal.reason, f"{self.source}: {refusal.detail}")
        return binding.ids

    def reject(self, reason: str, detail: str) -> None:
        """Count one rejected reading (``reason`` as on ``millnet_ingest_rejected_total``)."""
        self._metrics.reject(reason, f"{self.source}: {detail}")

    def emit(self, series_id: int, ts_ns: int, value: float,
             quality: Quality = Quality.GOOD) -> None:
        """Append one numeric reading to the open batch (NaN with a bad quality when unread)."""
        self._pipeline.live.append(series_id, ts_ns, value, int(quality))

    def emit_text(self, series_id: int, ts_ns: int, value: str,
                  quality: Quality = Quality.GOOD) -> None:
        self._pipeline.live.text.append(TextSample(series_id, ts_ns, value, quality))

    def emit_bad(self, series_ids: Sequence[int], ts_ns: int,
                 quality: Quality = Quality.BAD) -> None:
        """Mark points unread at ``ts_ns`` (a failed poll, a dropped subscription): the gap
        shows in the data as NaN with ``quality``, nothing is invented."""
        for sid in series_ids:
            self._pipeline.live.append(sid, ts_ns, math.nan, int(quality))

    def done(self, count: int) -> None:
        """Tell the pipeline ``count`` readings were appended since the last call."""
        self._pipeline.appended(count)

    async def capacity(self) -> None:
        """Return when the pipeline has room: await it before each poll or read."""
        await self._pipeline.wait_capacity()
