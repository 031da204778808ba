"""Security events and the enterprise node's detectors (issue 13).

``build_security`` is what ``node.py`` calls; the monitor it returns holds the store and the
detectors (``monitor.auth``, ``monitor.devices``, ``monitor.rates``, ``monitor.violations``).
See docs/security-monitoring.md for the hooks that feed them.
"""

from __future__ import annotations

from millnet.security.auth import AuthFailureDetector
from millnet.security.devices import DeviceFingerprints, birth_fingerprint, metric_set
from millnet.security.monitor import OVERFLOW_KIND, SecurityMonitor
from millnet.security.rates import RateAnomalyDetector
from millnet.security.records import BucketCount, EventQuery, StoredEvent
from millnet.security.settings import SecuritySettings
from millnet.security.store import SecurityEventStore
from millnet.security.violations import ViolationReporter


def build_security(settings: SecuritySettings, db_url: str) -> SecurityMonitor:
    """Open the store on ``db_url`` (migrating it), load the remembered device fingerprints
    and build the monitor; the caller runs ``monitor.run()`` in its task group and closes
    ``monitor.store`` at the end (blocking: call before the loop serves)."""
    store = SecurityEventStore.open(db_url)
    try:
        monitor = SecurityMonitor(store, settings)
        monitor.devices.load()
    except BaseException:
        store.close()
        raise
    return monitor


__all__ = ["OVERFLOW_KIND", "AuthFailureDetector", "BucketCount", "DeviceFingerprints",
           "EventQuery", "RateAnomalyDetector", "SecurityEventStore", "SecurityMonitor",
           "SecuritySettings", "StoredEvent", "ViolationReporter", "birth_fingerprint",
           "build_security", "metric_set"]
