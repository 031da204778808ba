"""Ingest counters, exported on ``/metrics`` in Prometheus format.

Each node owns its own :class:`prometheus_client.CollectorRegistry`, so several nodes (tests, the
demo federation) can live in one process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("millnet.ingest")


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "millnet_ingest_messages_received", "Messages received, by source", ["source"],
            registry=r)
        self.received = Counter(
            "millnet_ingest_samples_received", "Samples decoded and queued", registry=r)
        self.stored = Counter(
            "millnet_ingest_samples_stored", "Samples committed to the telemetry store",
            registry=r)
        self.rejected = Counter(
            "millnet_ingest_rejected", "Messages or metrics rejected, by reason", ["reason"],
            registry=r)
        self.queue_depth = Gauge(
            "millnet_ingest_queue_depth", "Samples waiting to be written", registry=r)
        self.write_seconds = Histogram(
            "millnet_ingest_batch_write_seconds", "Time to commit one batch", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.connected = Gauge(
            "millnet_source_connected", "1 while a source is connected", ["source"], registry=r)
        self.store_errors = Counter(
            "millnet_ingest_store_errors", "Batch writes that failed and were retried",
            registry=r)
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def reject(self, reason: str, detail: str, count: int = 1) -> None:
        """Count a rejection and log it, at most once per reason every 10 s."""
        self.rejected.labels(reason).inc(count)
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 10.0:
            extra = self._suppressed.pop(reason, 0)
            more = f" (+{extra} more since last report)" if extra else ""
            log.warning("rejected (%s): %s%s", reason, detail[:300], more)
            self._last_log[reason] = now
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + count

    def rejected_count(self, reason: str) -> float:
        value = self.registry.get_sample_value("millnet_ingest_rejected_total", {"reason": reason})
        return value or 0.0
