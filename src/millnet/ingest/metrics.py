"""Ingest counters, exported on ``/metrics`` in Prometheus format.

Each node owns its own :class:`prometheus_client.CollectorRegistry`, so several nodes (tests, the
demo federation) can live in one process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from millnet.errors import InvalidInput, RejectedMessage, StorageError

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
        self.read_pauses = Counter(
            "millnet_source_read_pauses", "Times a source stopped reading its connection "
            "because the node was busy (backpressure)", ["source"], registry=r)
        self.queue_peak = Gauge(
            "millnet_source_queue_peak_messages", "Most messages a source held when it paused",
            ["source"], registry=r)
        self.restarts = Counter(
            "millnet_task_restarts", "Background tasks restarted after a failure, by task",
            ["task"], registry=r)
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        #: ``on_reject(reason, detail, count)``: the security monitor's violation hook, if any.
        self.on_reject: Callable[[str, str, int], None] | None = None

    def reject(self, reason: str, detail: str, count: int = 1) -> None:
        """Count a rejection and log it, at most once per reason every 10 s."""
        self.rejected.labels(reason).inc(count)
        if self.on_reject is not None:
            self.on_reject(reason, detail, count)
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 10.0:
            extra = self._suppressed.pop(reason, 0)
            more = f" (+{extra} more since last report)" if extra else ""
            log.warning("rejected (%s): %s%s", reason, detail[:300], more)
            self._last_log[reason] = now
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + count

    @contextlib.contextmanager
    def rejecting(self, context: str) -> Iterator[None]:
        """The supervision boundary around one message: whatever goes wrong while handling it
        becomes one counted rejection and the source goes on with the next message.

        :class:`StorageError` passes through (the message is fine, a store is not: the caller
        retries it later rather than reject it), as do cancellation and exits."""
        try:
            yield
        except RejectedMessage as exc:
            self.reject(exc.reason, f"{context}: {exc}")
        except InvalidInput as exc:
            self.reject("invalid", f"{context}: {exc}")
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - one message's bug must not stop its source
            self.reject("internal_error", f"{context}: {type(exc).__name__}: {exc}")
            self._log_traceback(exc)

    def _log_traceback(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_log.get("traceback", -1e9) >= 60.0:
            self._last_log["traceback"] = now
            log.error("unexpected error while handling a message (further tracebacks "
                      "suppressed for 60 s)", exc_info=exc)

    def rejected_count(self, reason: str) -> float:
        value = self.registry.get_sample_value("millnet_ingest_rejected_total", {"reason": reason})
        return value or 0.0
