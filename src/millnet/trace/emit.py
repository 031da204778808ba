"""EPCIS events the node emits itself, from what its lines report (``[trace] emit``).

Each line's good-part counter (the sum over its machines of the KPI's good-parts point) is
read every ``emit_every_s``. Every ``batch_size`` good parts make a batch, named
``<tenant prefix>/BATCH-<line id>-<start epoch s>``:

* batch started: ObjectEvent ADD, bizStep ``commissioning``, at the line's read point
  (``urn:millnet:asset:<line id>``);
* batch finished: TransformationEvent, the parts consumed as an input quantity of the line's
  part class (``<prefix>/PARTS-<line id>``, ``batch_size`` EA) to the batch as output,
  bizStep ``assembling``;
* product packed: ObjectEvent OBSERVE of the batch, bizStep ``packing``.

They go through the capture path (schema, hash, store) like any captured document. The state is
in memory: after a restart the first reading starts a new batch (a batch open at the stop is
never finished; its start event stays).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from millnet.trace import ids
from millnet.trace.capture import parse
from millnet.trace.ehash import STANDARD_CONTEXT
from millnet.trace.store import EpcisStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LineCounter:
    tenant_id: int
    line_id: int
    line_path: str
    good: float


@dataclass
class _Open:
    batch: str
    base: float  # the counter when the batch started


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def started(batch: str, read_point: str, now: datetime) -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventTime": _stamp(now), "eventTimeZoneOffset": "+00:00",
            "epcList": [ids.uri_of(batch)], "action": "ADD", "bizStep": "commissioning",
            "disposition": "active", "readPoint": {"id": read_point}}


def finished(batch: str, parts_class: str, parts: float, read_point: str,
             now: datetime) -> list[dict[str, Any]]:
    made = {"type": "TransformationEvent", "eventTime": _stamp(now),
            "eventTimeZoneOffset": "+00:00",
            "inputQuantityList": [{"epcClass": ids.uri_of(parts_class), "quantity": parts,
                                   "uom": "EA"}],
            "outputEPCList": [ids.uri_of(batch)], "bizStep": "assembling",
            "disposition": "in_progress", "readPoint": {"id": read_point}}
    packed = {"type": "ObjectEvent", "eventTime": _stamp(now), "eventTimeZoneOffset": "+00:00",
              "epcList": [ids.uri_of(batch)], "action": "OBSERVE", "bizStep": "packing",
              "disposition": "in_progress", "readPoint": {"id": read_point}}
    return [made, packed]


class Emitter:
    """Turns line counters into batch events; ``tick`` once per reading, ``run`` forever."""

    def __init__(self, store: EpcisStore, counters: Callable[[], list[LineCounter]], *,
                 prefix_of: Callable[[int], str | None], batch_size: int = 20,
                 every_s: float = 5.0, now: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._counters = counters
        self._prefix_of = prefix_of
        self._size = batch_size
        self._every = every_s
        self._now = now or (lambda: datetime.now(UTC))
        self._open: dict[int, _Open] = {}
        self.emitted = 0

    def tick(self) -> int:
        """Read the counters once and store the events they mean; the number stored."""
        by_tenant: dict[int, list[dict[str, Any]]] = {}
        now = self._now()
        for line in self._counters():
            prefix = self._prefix_of(line.tenant_id)
            if prefix is None:
                continue
            events = by_tenant.setdefault(line.tenant_id, [])
            events += self._advance(line, prefix, now)
        stored = 0
        for tenant_id, events in by_tenant.items():
            if events:
                doc = {"@context": [STANDARD_CONTEXT], "type": "EPCISDocument",
                       "schemaVersion": "2.0", "creationDate": _stamp(now),
                       "epcisBody": {"eventList": events}}
                stored += self._store.capture(tenant_id, parse(doc)).stored
        self.emitted += stored
        return stored

    def _advance(self, line: LineCounter, prefix: str, now: datetime) -> list[dict[str, Any]]:
        read_point = f"urn:millnet:asset:{line.line_id}"
        current = self._open.get(line.line_id)
        events: list[dict[str, Any]] = []
        if current is not None and line.good < current.base:  # the counter was reset
            current = None
        if current is not None and line.good - current.base >= self._size:
            events += finished(current.batch, f"{prefix}/PARTS-{line.line_id}",
                               float(self._size), read_point, now)
            current = None
        if current is None:
            batch = f"{prefix}/BATCH-{line.line_id}-{int(now.timestamp() * 1000)}"
            current = _Open(batch, line.good)
            events.append(started(batch, read_point, now))
        self._open[line.line_id] = current
        return events

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # one bad reading must not stop the emitter
                log.exception("trace: emitting events failed")
            await asyncio.sleep(self._every)
