"""Security detectors over what the probe decodes: unusual writers, PLC stop and program
download, diagnostics and restarts, scanning, malformed industrial PDUs.

Each raises :class:`~millnet.model.security.SecurityEvent` through one callback. Repeats of the
same (kind, source, target) within ``repeat_seconds`` are counted, not raised again, so a
flood of bad packets costs counters, not events.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from millnet.errors import InvalidInput
from millnet.model.security import DetailValue, EventKind, SecurityEvent, Severity
from millnet.probe.model import Pdu

#: Diagnostics and restarts (Modbus FC 8, DNP3 cold/warm restart) have no member in EventKind
#: yet; a parent accepts any well-formed kind.
FIELD_DIAGNOSTIC: Final = "field.diagnostic"
#: Modbus FC 8 sub-functions that take a device off the bus: restart communications, force
#: listen only mode (Modbus Application Protocol 1.1b3, 6.8.1)
MODBUS_RESTARTS: Final = frozenset({1, 4})

K = TypeVar("K")
V = TypeVar("V")
EventSink = Callable[[SecurityEvent], None]
Writer = tuple[str, str, str]  # source address, protocol, function


def writer_of(source: str, pdu: Pdu) -> Writer:
    """What the write baseline remembers of a write: who, over what, which function."""
    function = pdu.name
    if pdu.protocol == "modbus":
        function = f"fc{pdu.detail.get('function')}"
    elif pdu.protocol == "mqtt":
        function = str(pdu.detail.get("sparkplug_type", pdu.name))
    return source, pdu.protocol, function


@dataclass(frozen=True, slots=True)
class Baseline:
    """Writers known to be normal; a JSON file ``{"writers": [{"source", "protocol",
    "function"}, ...]}`` (``millnet probe --save-baseline`` writes one)."""

    writers: frozenset[Writer]

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            document = json.loads(path.read_text())
            rows = document["writers"]
            return cls(frozenset((str(r["source"]), str(r["protocol"]), str(r["function"]))
                                 for r in rows))
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}", "baseline") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path} is not a baseline file ({exc!r})", "baseline") from exc

    def save(self, path: Path) -> None:
        rows = [{"source": s, "protocol": p, "function": f} for s, p, f in sorted(self.writers)]
        path.write_text(json.dumps({"writers": rows}, indent=1) + "\n")


class Detectors:
    def __init__(self, emit: EventSink, baseline: Baseline | None = None,
                 learn_seconds: float = 60.0, scan_window: float = 60.0,
                 scan_threshold: int = 20, repeat_seconds: float = 60.0,
                 max_sources: int = 4096) -> None:
        self._emit = emit
        self.writers: set[Writer] = set(baseline.writers) if baseline else set()
        self.learn_seconds = 0.0 if baseline else learn_seconds
        self.scan_window, self.scan_threshold = scan_window, scan_threshold
        self.repeat_seconds = repeat_seconds
        self.max_sources = max_sources
        self._started: float | None = None
        self._last_raised: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._syns: OrderedDict[str, deque[tuple[float, str, int]]] = OrderedDict()
        self._answered: OrderedDict[tuple[str, str, int], None] = OrderedDict()

    def tick(self, ts: float) -> None:
        if self._started is None:
            self._started = ts

    def learning(self, ts: float) -> bool:
        return self._started is None or ts - self._started < self.learn_seconds

    def raise_event(self, ts: float, kind: str, severity: Severity, summary: str, source: str,
                    target: str, detail: dict[str, DetailValue], about: str | None = None) -> None:
        """Raise unless the same (kind, source, ``about``: the target unless given) was raised
        within ``repeat_seconds``."""
        key = (kind, source, target if about is None else about)
        last = self._last_raised.get(key)
        if last is not None and 0 <= ts - last < self.repeat_seconds:
            return
        self._remember(self._last_raised, key, ts)
        self._emit(SecurityEvent(kind, severity, summary[:500], source[:256], target[:256],
                                 datetime.fromtimestamp(ts, UTC), detail))

    def _remember(self, table: OrderedDict[K, V], key: K, value: V) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_sources:
            table.popitem(last=False)

    def on_pdu(self, ts: float, pdu: Pdu, client: str, server: str) -> None:
        if not pdu.from_client:
            return
        target = server
        if "edge_node" in pdu.detail:  # a Sparkplug command acts on the edge node, not the broker
            target = "/".join(str(pdu.detail[k]) for k in ("group", "edge_node", "device")
                              if k in pdu.detail)
        if pdu.action == "write":
            self._write(ts, pdu, client, target)
        elif pdu.action == "stop":
            self.raise_event(ts, EventKind.FIELD_PLC_STOP, Severity.CRITICAL,
                             f"{pdu.protocol} {pdu.name} from {client} to {target}",
                             client, target, _detail(pdu))
        elif pdu.action == "download":
            self.raise_event(ts, EventKind.FIELD_PROGRAM_DOWNLOAD, Severity.HIGH,
                             f"{pdu.protocol} program download ({pdu.name}) from {client} "
                             f"to {target}", client, target, _detail(pdu))
        elif pdu.action == "diagnostic":
            restart = (pdu.protocol == "dnp3"
                       or pdu.detail.get("sub_function") in MODBUS_RESTARTS)
            self.raise_event(ts, FIELD_DIAGNOSTIC, Severity.HIGH if restart else Severity.LOW,
                             f"{pdu.protocol} {pdu.name} from {client} to {target}",
                             client, target, _detail(pdu))

    def _write(self, ts: float, pdu: Pdu, client: str, target: str) -> None:
        writer = writer_of(client, pdu)
        if writer in self.writers:
            return
        if len(self.writers) < self.max_sources * 4:
            self.writers.add(writer)
        if self.learning(ts):
            return
        self.raise_event(ts, EventKind.FIELD_WRITE_UNUSUAL, Severity.MEDIUM,
                         f"{client} wrote with {pdu.protocol} {writer[2]} to {target}, "
                         f"never seen writing that before", client, target, _detail(pdu),
                         about=f"{target} {pdu.protocol} {writer[2]}")

    def malformed(self, ts: float, protocol: str, sender: str, receiver: str,
                  reason: str) -> None:
        self.raise_event(ts, EventKind.PROTOCOL_MALFORMED, Severity.LOW,
                         f"malformed {protocol} from {sender}: {reason}", sender, receiver,
                         {"protocol": protocol, "reason": reason[:200]},
                         about=f"{receiver} {protocol}")

    def syn(self, ts: float, source: str, target: str, port: int) -> None:
        """A connection attempt; raises a scan when one source reaches many ports or hosts."""
        seen = self._syns.get(source)
        if seen is None:
            seen = deque(maxlen=4 * self.scan_threshold)
            self._remember(self._syns, source, seen)
        seen.append((ts, target, port))
        while seen and ts - seen[0][0] > self.scan_window:
            seen.popleft()
        pairs = {(t, p) for _, t, p in seen}
        hosts = {t for t, _ in pairs}
        ports = {p for _, p in pairs}
        if len(pairs) < self.scan_threshold or (len(ports) < self.scan_threshold
                                                and len(hosts) < self.scan_threshold):
            return
        answered = sum((source, t, p) in self._answered for t, p in pairs)
        self.raise_event(ts, EventKind.NETWORK_SCAN, Severity.MEDIUM,
                         f"{source} tried {len(ports)} ports on {len(hosts)} hosts in "
                         f"{self.scan_window:g} s ({len(pairs) - answered} unanswered)",
                         source, ",".join(sorted(hosts))[:256],
                         {"ports": len(ports), "hosts": len(hosts),
                          "unanswered": len(pairs) - answered}, about="")

    def answered(self, source: str, target: str, port: int) -> None:
        self._remember(self._answered, (source, target, port), None)


def _detail(pdu: Pdu) -> dict[str, DetailValue]:
    detail: dict[str, DetailValue] = {"protocol": pdu.protocol, "name": pdu.name[:200]}
    for key, value in list(pdu.detail.items())[:24]:
        detail[key] = value[:200] if isinstance(value, str) else value
    return detail

