"""A sensor's reports to its node (``millnet probe --report-to``): security events to
``POST /api/v1/security/events``, the hosts it saw to ``POST /api/v1/security/hosts``.

The capture never waits for the node: :meth:`NodeReporter.submit` appends to a bounded queue
(beyond ``max_queue`` the oldest event is dropped and counted) and a thread of its own posts
batches of at most ``batch`` events. A batch the node could not take (unreachable, 5xx, 429)
is kept and tried again with a growing pause (up to ``MAX_BACKOFF_S``); one it refused (4xx:
a bad token, a field it does not accept) is dropped and counted, since sending it again would
be refused again. Hosts: the capture side calls :meth:`offer_hosts` as often as it likes; it
takes the inventory at most every ``hosts_every_s`` and only the latest is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from millnet.model.security import SecurityEvent

log = logging.getLogger("millnet.sensor")

MAX_BACKOFF_S: Final = 30.0
BATCH: Final = 200  # within the node's limit per request (500)


@dataclass
class ReportStats:
    sent: int = 0
    dropped_full: int = 0  # the queue was full: the oldest went
    refused: int = 0  # events in batches the node refused (4xx)
    failures: int = 0  # attempts that will be retried
    hosts_sent: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


def event_json(event: SecurityEvent) -> dict[str, Any]:
    return {"kind": event.kind, "severity": event.severity.label, "summary": event.summary,
            "source": event.source, "target": event.target,
            "occurred_at": event.occurred_at.isoformat(), "detail": dict(event.detail)}


class NodeReporter:
    def __init__(self, url: str, token: str, *, batch: int = BATCH, interval_s: float = 1.0,
                 max_queue: int = 10_000, hosts_every_s: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("--report-to must start with http:// or https://")
        self._base = f"{url.rstrip('/')}/api/v1/security"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._batch, self._interval = batch, interval_s
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queue = max_queue
        self._hosts: list[dict[str, Any]] | None = None
        self._hosts_every, self._hosts_due = hosts_every_s, 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._client = client or httpx.Client(timeout=10.0)
        self._thread = threading.Thread(target=self._run, name="node-reporter", daemon=True)
        self.stats = ReportStats()

    # -- the capture's side (never blocks on the network) ------------------------------------
    def submit(self, event: SecurityEvent) -> None:
        with self._lock:
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.stats.dropped_full += 1
            self._queue.append(event_json(event))
            full = len(self._queue) >= self._batch
        if full:
            self._wake.set()

    def offer_hosts(self, inventory: Callable[[], list[dict[str, Any]]], *,
                    force: bool = False) -> None:
        """Take ``inventory()`` if a hosts report is due (cheap to call per packet)."""
        now = time.monotonic()
        if now < self._hosts_due and not force:
            return
        self._hosts_due = now + self._hosts_every
        hosts = inventory()
        if hosts:
            with self._lock:
                self._hosts = hosts

    # -- the thread --------------------------------------------------------------------------
    def start(self) -> NodeReporter:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (trying for at most ``timeout`` seconds), then stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        backoff = 0.0
        deadline: float | None = None
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + 5.0  # the last round: try a few seconds
            if not self._stop.is_set():
                self._wake.wait(backoff or self._interval)
                self._wake.clear()
            ok = self._send_hosts() and self._send_events()
            backoff = 0.0 if ok else min(max(backoff * 2, 0.5), MAX_BACKOFF_S)
            with self._lock:
                idle = not self._queue and self._hosts is None
            if deadline is not None and (idle or time.monotonic() > deadline):
                return
            if deadline is not None and not ok:
                time.sleep(0.2)

    def _send_events(self) -> bool:
        with self._lock:
            batch = [self._queue[i] for i in range(min(self._batch, len(self._queue)))]
        if not batch:
            return True
        outcome = self._post("events", {"events": batch})
        if outcome == "retry":
            return False
        with self._lock:
            for _ in batch:
                self._queue.popleft()
        if outcome == "ok":
            self.stats.sent += len(batch)
        else:
            self.stats.refused += len(batch)
        return True

    def _send_hosts(self) -> bool:
        with self._lock:
            hosts = self._hosts
        if hosts is None:
            return True
        outcome = self._post("hosts", {"hosts": hosts[:2000]})
        if outcome == "retry":
            return False
        with self._lock:
            if self._hosts is hosts:
                self._hosts = None
        self.stats.hosts_sent += outcome == "ok"
        return True

    def _post(self, what: str, body: dict[str, Any]) -> str:
        """``ok``, ``refused`` (do not send again) or ``retry``."""
        try:
            answer = self._client.post(f"{self._base}/{what}", json=body,
                                       headers=self._headers)
        except httpx.HTTPError as exc:
            return self._failed(f"{what}: {exc}")
        if answer.status_code < 300:
            return "ok"
        detail = f"{what}: {answer.status_code} {answer.text[:300]}"
        if answer.status_code == 429 or answer.status_code >= 500:
            return self._failed(detail)
        self.stats.last_error = detail
        if len(self.stats.errors) < 20:
            self.stats.errors.append(detail)
        log.error("the node refused the sensor's %s: %s", what, detail)
        return "refused"

    def _failed(self, detail: str) -> str:
        self.stats.failures += 1
        self.stats.last_error = detail
        log.warning("sensor report not delivered (tried again): %s", detail)
        return "retry"
