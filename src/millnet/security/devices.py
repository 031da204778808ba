"""New devices and changed devices, by fingerprint.

A fingerprint is a small ``{name: text}`` dictionary of what identifies a device on its protocol:
the metric set of a Sparkplug NBIRTH/DBIRTH (:func:`metric_set`), an OPC UA server's
application URI and product, a Modbus device's identification objects (vendor, product code,
revision). :meth:`DeviceFingerprints.observe_device` answers from memory (it is called on the
event loop, by ingest): the first sight of a device raises ``device.unknown`` (unless the caller
says the registry knew it), a different fingerprint ``device.fingerprint_changed``. What changed
is written by the monitor's writer thread (:meth:`flush`, registered as a flusher), and loaded
back at start (:meth:`load`), so a restart raises nothing for devices seen before.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from millnet.errors import InvalidInput
from millnet.model import PointSpec
from millnet.model.security import MAX_TEXT, EventKind, SecurityEvent, Severity
from millnet.security.base import Reporter, clip
from millnet.security.schema import DEVICE_KEY_WIDTH
from millnet.security.store import Fingerprints, FingerprintWrite, SecurityEventStore

MAX_ITEMS = 32
MAX_CHANGES_SHOWN = 8


def metric_set(names: Iterable[str]) -> dict[str, str]:
    """A Sparkplug birth's fingerprint: how many metrics and a hash of their sorted names (the
    names themselves may be thousands)."""
    unique = sorted(set(names))
    digest = hashlib.sha256("\n".join(unique).encode("utf-8", "surrogatepass")).hexdigest()
    return {"metrics": str(len(unique)), "metric_names": digest[:32]}


def birth_fingerprint(specs: Iterable[PointSpec]) -> dict[str, str]:
    """A Sparkplug NBIRTH/DBIRTH's fingerprint: its metric set, names with datatypes (a metric
    that changes type is a changed device too)."""
    return metric_set(f"{s.name}:{s.datatype.value}" for s in specs)


def _normal(fingerprint: dict[str, str]) -> dict[str, str]:
    """Keys as given (the caller's names), values cut to fit: a long value from the network is
    replaced by its hash, so it still tells a change."""
    if len(fingerprint) > MAX_ITEMS:
        raise InvalidInput(f"a device fingerprint has at most {MAX_ITEMS} items", "fingerprint")
    normal: dict[str, str] = {}
    for key, value in fingerprint.items():
        text = str(value)
        if len(text) > MAX_TEXT:
            text = "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        normal[clip(str(key), 64)] = text
    return normal


class DeviceFingerprints:
    """Thread-safe; remembers every device it has seen (bounded by the store, not by memory:
    100,000 devices of a few items each are a few tens of megabytes)."""

    def __init__(self, reporter: Reporter, store: SecurityEventStore) -> None:
        self._reporter = reporter
        self._store = store
        self._known: Fingerprints = {}
        self._dirty: dict[tuple[int, str], FingerprintWrite] = {}
        self._lock = threading.Lock()

    def load(self) -> int:
        """Read the remembered fingerprints (blocking; once, before ingest starts)."""
        known = self._store.load_fingerprints()
        with self._lock:
            self._known = {**known, **self._known}
        return len(known)

    def observe_device(self, tenant_id: int, device_key: str, fingerprint: dict[str, str], *,
                       registered: bool = False) -> str | None:
        """Judge one sighting; ``device.unknown`` or ``device.fingerprint_changed`` when raised
        (None: nothing new). ``registered``: the registry already knew the device, so its first
        sighting only records its fingerprint."""
        key = (tenant_id, clip(device_key, DEVICE_KEY_WIDTH))
        seen = _normal(fingerprint)
        now = datetime.now(UTC)
        with self._lock:
            before = self._known.get(key)
            if before == seen:
                return None
            self._known[key] = seen
            self._dirty[key] = FingerprintWrite(tenant_id, key[1], seen, now)
        if before is None:
            if registered:
                return None
            event = SecurityEvent(
                EventKind.DEVICE_UNKNOWN, Severity.MEDIUM,
                f"device {clip(device_key, 200)} seen for the first time",
                target=clip(device_key), occurred_at=now,
                detail={k: v for k, v in list(seen.items())[:MAX_ITEMS]})
        else:
            changed = sorted(k for k in seen.keys() | before.keys()
                             if seen.get(k) != before.get(k))
            event = SecurityEvent(
                EventKind.DEVICE_FINGERPRINT_CHANGED, Severity.HIGH,
                f"device {clip(device_key, 200)} changed: "
                f"{', '.join(changed[:MAX_CHANGES_SHOWN])}",
                target=clip(device_key), occurred_at=now,
                detail={"changed": clip(",".join(changed)), "changes": len(changed)})
        self._reporter.report(event, tenant_id)
        return event.kind

    def flush(self) -> None:
        """Write the fingerprints that changed (blocking: the monitor's writer thread). A failed
        write keeps them for the next round."""
        with self._lock:
            todo, self._dirty = self._dirty, {}
        try:
            self._store.save_fingerprints(todo.values())
        except BaseException:
            with self._lock:
                self._dirty = {**todo, **self._dirty}
            raise
