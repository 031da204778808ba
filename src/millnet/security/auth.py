"""Failed authentications: brute force, credential stuffing and token misuse.

Fed by the API's :class:`~millnet.api.auth.Authenticator` (``on_failure``) and by the identifier
service's throttles (``AuthThrottle.on_failure``), each failure as (source address, reason,
credential fingerprint, target). A fingerprint is a short keyed hash made by the caller: enough
to count distinct credentials, never the credential.

* ``auth.brute_force``: ``brute_force_failures`` failures from one source within
  ``auth_window_s``;
* ``auth.credential_stuffing``: ``stuffing_credentials`` distinct credentials failing from one
  source, or one credential failing from ``stuffing_sources`` sources, within the window;
* ``auth.token_misuse``: a revoked token, or a token used on another tenant's objects.

Once a source is over a threshold, every further failure is reported with count 1, so the
stored event's count is the number of failures of the attack (one row for 10,000 attempts: the
monitor folds them). A source is judged afresh once its window has emptied.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security.base import Bounded, Reporter, clip, source_key
from millnet.security.settings import SecuritySettings

MISUSE_REASONS = frozenset({"revoked", "other_tenant"})
ESCALATE = 10  # a brute force this many times over its threshold within a window is HIGH


@dataclass(slots=True)
class _Window:
    seen: deque[tuple[float, str]] = field(default_factory=deque)  # (time, fingerprint or source)
    raised: bool = False

    def prune(self, cutoff: float) -> None:
        seen = self.seen
        while seen and seen[0][0] <= cutoff:
            seen.popleft()
        if not seen:
            self.raised = False

    def distinct(self) -> int:
        return len({what for _, what in self.seen})

    def step(self, now: float, cutoff: float, what: str, threshold: int) -> tuple[int, int] | None:
        """Record ``what`` failing at ``now``; once ``threshold`` distinct ones are in the window,
        (distinct, occurrences to report): all of them the first time, one at a time after."""
        self.prune(cutoff)
        self.seen.append((now, what))
        distinct = self.distinct()
        if not self.raised and distinct < threshold:
            return None
        count = 1 if self.raised else len(self.seen)
        self.raised = True
        return distinct, count


class AuthFailureDetector:
    """Thread-safe: the API reports failures from its thread pool."""

    def __init__(self, reporter: Reporter, settings: SecuritySettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reporter = reporter
        self._s = settings
        self._clock = clock
        self._by_source: Bounded[_Window] = Bounded(settings.max_tracked)
        self._stuffing: Bounded[_Window] = Bounded(settings.max_tracked)
        self._by_credential: Bounded[_Window] = Bounded(settings.max_tracked)
        self._lock = threading.Lock()

    def hook(self, target: str) -> Callable[[str, str, str], None]:
        """A ``(source, reason, fingerprint)`` callback reporting failures against ``target``
        (``api``, ``handle``...)."""

        def on_failure(source: str, reason: str, fingerprint: str) -> None:
            self.observe_failure(source, reason, fingerprint, target=target)

        return on_failure

    def observe_failure(self, source: str, reason: str, fingerprint: str, *,
                        target: str = "api", tenant_id: int | None = None) -> None:
        src, fp, target, reason = source_key(source), clip(fingerprint, 64), clip(target), \
            clip(reason, 64)
        now = self._clock()
        cutoff = now - self._s.auth_window_s
        with self._lock:
            reports = [*self._brute_force(src, fp, target, now, cutoff),
                       *self._stuffing_from_source(src, fp, target, now, cutoff),
                       *self._stuffing_of_credential(src, fp, target, now, cutoff)]
        if reason in MISUSE_REASONS:
            reports.append((SecurityEvent(
                EventKind.AUTH_TOKEN_MISUSE, Severity.HIGH,
                f"{reason.replace('_', ' ')} credential used on {target} from {src}",
                source=src, target=target, detail={"reason": reason, "credential": fp}), 1))
        for event, count in reports:
            self._reporter.report(event, tenant_id, count)

    def _brute_force(self, src: str, fp: str, target: str, now: float,
                     cutoff: float) -> list[tuple[SecurityEvent, int]]:
        w = self._by_source.touch(f"{target}\0{src}", _Window)
        w.prune(cutoff)
        w.seen.append((now, fp))
        n = len(w.seen)
        if n < self._s.brute_force_failures:
            return []
        count = 1 if w.raised else n
        w.raised = True
        severity = Severity.HIGH if n >= ESCALATE * self._s.brute_force_failures \
            else Severity.MEDIUM
        return [(SecurityEvent(
            EventKind.AUTH_BRUTE_FORCE, severity,
            f"{n} failed authentications on {target} from {src} within "
            f"{self._s.auth_window_s:g} s", source=src, target=target,
            detail={"failures_in_window": n, "window_s": self._s.auth_window_s}), count)]

    def _stuffing_from_source(self, src: str, fp: str, target: str, now: float,
                              cutoff: float) -> list[tuple[SecurityEvent, int]]:
        stepped = self._stuffing.touch(f"{target}\0{src}", _Window).step(
            now, cutoff, fp, self._s.stuffing_credentials)
        if stepped is None:
            return []
        distinct, count = stepped
        return [(SecurityEvent(
            EventKind.AUTH_CREDENTIAL_STUFFING, Severity.HIGH,
            f"{distinct} distinct credentials failed on {target} from {src}",
            source=src, target=target,
            detail={"distinct_credentials": distinct, "window_s": self._s.auth_window_s}),
            count)]

    def _stuffing_of_credential(self, src: str, fp: str, target: str, now: float,
                                cutoff: float) -> list[tuple[SecurityEvent, int]]:
        if not fp:
            return []
        stepped = self._by_credential.touch(f"{target}\0{fp}", _Window).step(
            now, cutoff, src, self._s.stuffing_sources)
        if stepped is None:
            return []
        sources, count = stepped
        return [(SecurityEvent(
            EventKind.AUTH_CREDENTIAL_STUFFING, Severity.HIGH,
            f"one credential failed on {target} from {sources} sources",
            source=f"credential:{fp}", target=target,
            detail={"distinct_sources": sources, "credential": fp, "latest_source": src}),
            count)]
