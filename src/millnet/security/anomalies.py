"""Anomaly-detector alarms as security events (``anomaly.alarm``): an anomaly in a plant's
process can be an attack on it (a manipulated setpoint looks like a drifting sensor), so the
security view shows them beside the network's events.

:class:`AnomalyAlarms` is a listener of the alarm service's stored transitions (on the loop):
it keeps only activations, and hands them to a worker thread, where the rule's kind is looked up
(through ``rule_kind``, blocking, remembered for ``KIND_TTL_S``) and the anomaly ones reported.
The loop never waits for the rule store.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from millnet.errors import MillnetError
from millnet.model.alarms import AlarmNotice, Priority
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security.base import Reporter, clip

log = logging.getLogger("millnet.security")

ANOMALY_KIND: Final = "anomaly"  # millnet.rules.definitions.RuleKind.ANOMALY
KIND_TTL_S: Final = 60.0  # a rule edited to another kind is followed within this
#: An alarm's priority as the event's severity.
SEVERITIES: Final = {Priority.CRITICAL: Severity.HIGH, Priority.HIGH: Severity.MEDIUM,
                     Priority.MEDIUM: Severity.LOW, Priority.LOW: Severity.LOW}


class AnomalyAlarms:
    def __init__(self, reporter: Reporter, rule_kind: Callable[[int], str]) -> None:
        self._reporter = reporter
        self._rule_kind = rule_kind
        self._kinds: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, notices: list[AlarmNotice]) -> None:
        """The alarm service's listener (on the loop): activations go to a worker thread."""
        activated = [n for n in notices if n.event == "activated"]
        if not activated:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside a loop (a test, a tool): do it here
            self.report(activated)
            return
        loop.run_in_executor(None, self.report, activated)

    def report(self, notices: list[AlarmNotice]) -> int:
        """Report the activations of anomaly rules among ``notices`` (blocking); how many."""
        reported = 0
        for n in notices:
            if n.event == "activated" and self._kind(n.rule_id) == ANOMALY_KIND:
                self._reporter.report(event_of(n), n.tenant_id)
                reported += 1
        return reported

    def _kind(self, rule_id: int) -> str | None:
        now = time.monotonic()
        with self._lock:
            held = self._kinds.get(rule_id)
        if held is not None and held[0] > now:
            return held[1]
        try:
            kind = self._rule_kind(rule_id)
        except MillnetError as exc:  # deleted meanwhile, or the database is away
            log.warning("anomaly alarm of rule %d not reported: %s", rule_id, exc)
            return None
        with self._lock:
            if len(self._kinds) > 10_000:
                self._kinds.clear()
            self._kinds[rule_id] = (now + KIND_TTL_S, kind)
        return kind


def event_of(n: AlarmNotice) -> SecurityEvent:
    score = n.value if n.value is not None and math.isfinite(n.value) else None
    detail: dict[str, str | int | float | bool] = {
        "rule_id": n.rule_id, "rule": clip(n.rule_name), "alarm_id": n.alarm_id,
        "priority": n.priority.label}
    if score is not None:
        detail["score"] = score
    shown = "" if score is None else f" (score {score:.3g})"
    return SecurityEvent(
        EventKind.ANOMALY_ALARM, SEVERITIES.get(n.priority, Severity.MEDIUM),
        clip(f"anomaly on {n.asset_path}{shown}: rule {n.rule_name}", 500),
        source=clip(f"rule:{n.rule_name}"), target=clip(n.asset_path),
        occurred_at=datetime.fromtimestamp(n.ts_ns / 1e9, UTC), detail=detail)
