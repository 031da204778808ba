"""The notifier's per-target figures as Prometheus metrics, read from its status when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from millnet.notify.service import Notifier

_COUNTERS = (("delivered", "Notifications delivered"),
             ("failed", "Notifications given up (permanent, exhausted or dropped)"),
             ("dropped", "Notifications dropped because the target's outbox was full"),
             ("retried", "Failed attempts scheduled again"))
_GAUGES = (("pending", "Notifications not delivered yet"),
           ("consecutive_failures", "Failed attempts since the last success"))


class NotifierCollector(Collector):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[Metric]:
        statuses = self._notifier.status()
        for key, doc in _COUNTERS:
            counter = CounterMetricFamily(f"millnet_notify_{key}", doc, labels=["target"])
            for s in statuses:
                counter.add_metric([s.name], float(getattr(s, key)))
            yield counter
        for key, doc in _GAUGES:
            gauge = GaugeMetricFamily(f"millnet_notify_{key}", doc, labels=["target"])
            for s in statuses:
                gauge.add_metric([s.name], float(getattr(s, key)))
            yield gauge


def export_metrics(notifier: Notifier, registry: CollectorRegistry) -> None:
    """Register the notifier's figures (``millnet_notify_*{target=...}``) on ``registry``."""
    registry.register(NotifierCollector(notifier))
