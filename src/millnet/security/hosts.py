"""Hosts that sensors (the passive probe) saw on the plant network, as they last reported them.

Kept in memory, by address, at most ``limit`` of them (the least recently reported forgotten
first): a probe reports its whole inventory again every few seconds, so a restart of the node
loses nothing that the next report does not bring back. The federation's inventory reads
:meth:`HostBook.current` (``Monitoring.probe_hosts``).
"""

from __future__ import annotations

import threading
from datetime import datetime

from millnet.model.hosts import ObservedHost
from millnet.security.base import Bounded

ReportedHost = ObservedHost


class HostBook:
    """Thread-safe: the API's thread pool writes, the inventory job reads."""

    def __init__(self, limit: int) -> None:
        self._hosts: Bounded[ReportedHost] = Bounded(limit)
        self._lock = threading.Lock()

    def update(self, hosts: list[ReportedHost]) -> int:
        """Replace what is known of each host by its new report; how many are known."""
        with self._lock:
            for report in hosts:
                held = self._hosts.get(report.address)
                keep = report
                if held is not None and held.first_seen is not None and (
                        report.first_seen is None or held.first_seen < report.first_seen):
                    keep = _with_first_seen(report, held.first_seen)
                self._hosts[keep.address] = keep
                self._hosts.move_to_end(keep.address)
                while len(self._hosts) > self._hosts.limit:
                    self._hosts.popitem(last=False)
            return len(self._hosts)

    def current(self) -> list[ReportedHost]:
        with self._lock:
            return sorted(self._hosts.values(), key=lambda h: h.address)


def _with_first_seen(host: ReportedHost, first_seen: datetime) -> ReportedHost:
    return ReportedHost(host.address, host.mac, host.roles, host.protocols, host.services,
                        host.vendor, host.model, host.firmware, first_seen, host.last_seen)
