"""Protocol violations (malformed Handle packets, malformed Sparkplug payloads, Sparkplug
sequence abuse) rate-limited into one report per (kind, source) per window.

The node already counts every rejection (ingest metrics, the identifier server's counters);
this turns them into security events without one event per bad packet: the first violation of
a (kind, source) in a window is reported at once (an operator sees it immediately), the rest of
the window's are summed and reported when the window ends (:meth:`flush`, which the monitor's
writer calls every round). The monitor then folds the window's reports into one row whose count
is the number of violations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from millnet.model.security import KIND_PATTERN, EventKind, SecurityEvent, Severity
from millnet.security.base import Bounded, Reporter, clip
from millnet.security.settings import SecuritySettings

SEVERITY = {EventKind.PROTOCOL_SEQUENCE_ABUSE.value: Severity.MEDIUM}
#: Ingest rejection reasons (``IngestMetrics.reject``) that are protocol violations; the rest
#: (quotas, a full store, a refused datatype) are the node's limits, not an attack.
SEQUENCE_REASONS = frozenset({"seq_gap", "data_before_birth", "stale_death", "replay"})
MALFORMED_REASONS = frozenset({"malformed", "oversized", "topic", "timestamp",
                               "unsupported_type"})
SPARKPLUG_PREFIX = "spBv1.0/"


@dataclass(slots=True)
class _Window:
    kind: str
    source: str
    started: float
    tenant_id: int | None
    held: int = 0
    detail: str = ""


def violation_kind(kind: str) -> str:
    """``malformed`` -> ``protocol.malformed``; a dotted kind as given; anything that is not a
    well-formed kind becomes ``protocol.malformed`` (the label itself may be hostile)."""
    full = kind if "." in kind else f"protocol.{kind}"
    return full if KIND_PATTERN.fullmatch(full) else EventKind.PROTOCOL_MALFORMED.value


class ViolationReporter:
    def __init__(self, reporter: Reporter, settings: SecuritySettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reporter = reporter
        self._window = settings.violation_window_s
        self._clock = clock
        self._open: Bounded[_Window] = Bounded(settings.max_tracked)
        self._lock = threading.Lock()

    def observe_violation(self, kind: str, source: str, detail: str = "", *, count: int = 1,
                          tenant_id: int | None = None) -> None:
        """``count`` violations of ``kind`` by ``source`` (an address, an edge node...)."""
        kind, source, now = violation_kind(kind), clip(source) or "unknown", self._clock()
        due: list[_Window] = []
        first = False
        with self._lock:
            key = f"{kind}\0{source}"
            w = self._open.get(key)
            if w is not None and now - w.started >= self._window:
                due.append(self._open.pop(key))
                w = None
            if w is None:
                w = self._open.touch(key, lambda: _Window(kind, source, now, tenant_id))
                first = True
                count -= 1
            w.held += max(count, 0)
            w.detail = detail
        for old in due:
            self._send(old)
        if first:
            self._send(_Window(kind, source, now, tenant_id, 1, detail))

    def rejection_hook(self, source_name: str) -> Callable[[str, str, int], None]:
        """A ``(reason, detail, count)`` callback for an ingest source's rejections: protocol
        violations only, attributed to the Sparkplug edge node when the detail starts with its
        topic (``spBv1.0/group/KIND/edge...``), else to ``source_name``."""

        def on_reject(reason: str, detail: str, count: int) -> None:
            if reason in SEQUENCE_REASONS:
                kind = EventKind.PROTOCOL_SEQUENCE_ABUSE.value
            elif reason in MALFORMED_REASONS:
                kind = EventKind.PROTOCOL_MALFORMED.value
            else:
                return
            source = source_name
            if detail.startswith(SPARKPLUG_PREFIX):
                parts = detail.split(":", 1)[0].split("/")
                if len(parts) >= 4:
                    source = f"{parts[1]}/{parts[3]}"
            self.observe_violation(kind, source, f"{reason}: {detail}", count=count)

        return on_reject

    def flush(self) -> None:
        """Report the sums of the windows that have ended."""
        now = self._clock()
        with self._lock:
            ended = [k for k, w in self._open.items() if now - w.started >= self._window]
            due = [self._open.pop(k) for k in ended]
        for w in due:
            self._send(w)

    def _send(self, w: _Window) -> None:
        if w.held <= 0:
            return
        self._reporter.report(SecurityEvent(
            w.kind, SEVERITY.get(w.kind, Severity.LOW),
            f"{w.kind.split('.', 1)[1].replace('_', ' ')} from {clip(w.source, 200)}",
            source=w.source, target="protocol", detail={"last": clip(w.detail)}),
            w.tenant_id, w.held)
