"""Rules evaluated on the latest values, once per chunk: expressions across a device's points,
suppression by design, anomaly detectors, and stale data.

An expression over several points cannot be decided by one sample: it is evaluated, like a PLC
scan, on the latest value of each input whenever one of them changed, at most once per chunk
(every ``tick_ms``). Inputs are gathered into a (bindings x inputs) matrix of series ids, so a
rule over a thousand machines is one vectorised evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from millnet.analytics.anomaly.base import Detector
from millnet.rules.expr import Expression
from millnet.rules.table import BindingTable, RuleCounters

log = logging.getLogger("millnet.rules")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class LastValues:
    """The latest usable value of every series, and when it came (``seen``, the node's clock).

    Index ``size`` is a sentinel that never has a value: a binding whose device lacks an input
    points there (its evaluation reports "no value of ...")."""

    def __init__(self, size: int, device_slot: I64, devices: int, now_ns: int) -> None:
        self.size = size
        self.value = np.full(size + 1, np.nan)
        self.ts = np.zeros(size + 1, dtype=np.int64)
        self.seen = np.full(size + 1, now_ns, dtype=np.int64)  # a point never seen: since start
        self.updated = np.zeros(size + 1, dtype=np.int64)  # when a value last came (0: never)
        self.device_slot = device_slot  # series -> device slot (-1: no device bound)
        self.device_seen = np.full(max(devices, 1), now_ns, dtype=np.int64)

    def update(self, series: I64, ts_ns: I64, value: F64, usable: npt.NDArray[np.bool_],
               now_ns: int) -> None:
        inside = series < self.size
        series, ts_ns, value, usable = series[inside], ts_ns[inside], value[inside], usable[inside]
        if not len(series):
            return
        order = np.argsort(series, kind="stable")
        s = series[order]
        last = np.r_[s[1:] != s[:-1], True]
        picked = order[last]
        ids = series[picked]
        # A BAD or STALE sample means "unknown now": the expression sees no value.
        self.value[ids] = np.where(usable[picked], value[picked], np.nan)
        self.ts[ids] = ts_ns[picked]
        self.seen[ids] = now_ns
        self.updated[ids] = now_ns
        slots = self.device_slot[ids]
        self.device_seen[slots[slots >= 0]] = now_ns

    def grow_devices(self, count: int, now_ns: int) -> None:
        if count > len(self.device_seen):
            extra = np.full(count - len(self.device_seen), now_ns, dtype=np.int64)
            self.device_seen = np.r_[self.device_seen, extra]


class ExpressionSet:
    """One expression rule (or one rule's ``suppress_when``) over its bound devices."""

    def __init__(self, table: BindingTable, counters: RuleCounters, expression: Expression,
                 gidx: list[int], inputs: list[list[int]], *, suppression: bool) -> None:
        self.table = table
        self.counters = counters
        self.expression = expression
        self.gidx = np.asarray(gidx, dtype=np.int64)
        self.inputs = np.asarray(inputs, dtype=np.int64).reshape(len(gidx), len(
            expression.inputs))
        self.suppression = suppression
        self.scanned_ns = 0

    def changed_rows(self, last: LastValues, now_ns: int) -> I64:
        """Bindings with an input updated since this set's last scan (which is now)."""
        since, self.scanned_ns = self.scanned_ns, now_ns
        if not self.inputs.size:
            return np.zeros(0, dtype=np.int64)
        return np.nonzero((last.updated[self.inputs] > since).any(axis=1))[0]

    def process(self, last: LastValues, now_ns: int) -> None:
        if not len(self.gidx):
            return
        rows = self.changed_rows(last, now_ns)
        if not len(rows):
            return
        series = self.inputs[rows]
        values = {name: last.value[series[:, j]] for j, name in enumerate(self.expression.inputs)}
        result = self.expression.evaluate(values)
        value = result.value if len(result.value) == len(rows) else np.resize(result.value,
                                                                                 len(rows))
        error = (result.error if len(result.error) == len(rows)
                 else np.resize(result.error, len(rows)))
        ts = last.ts[series].max(axis=1)
        self.counters.evaluations += len(rows)
        if error.any():
            first = int(np.nonzero(error)[0][0])
            device = self.table.bindings[int(self.gidx[rows[first]])].device.name
            self.counters.error(f"{device}: {result.reason}", now_ns, int(error.sum()))
        holds = (value != 0) & ~error
        t = self.table
        g = self.gidx[rows]
        if self.suppression:
            moved = ~error & (holds != t.suppressed[g])
        else:
            moved = ~error & ((holds != t.active[g]) | (t.pending[g] != 0))
        for k in np.nonzero(moved)[0].tolist():
            if self.suppression:
                t.set_suppressed(int(g[k]), bool(holds[k]), int(ts[k]))
            else:
                t.step(int(g[k]), int(ts[k]), bool(holds[k]), not bool(holds[k]),
                       float(value[k]))


class AnomalySet:
    """Per-device detectors of one anomaly rule: a row of the latest values per chunk in which
    an input changed."""

    def __init__(self, table: BindingTable, counters: RuleCounters,
                 make: Callable[[], Detector], gidx: list[int], inputs: list[list[int]],
                 detectors: dict[int, Detector] | None = None) -> None:
        self.table = table
        self.counters = counters
        self.make = make
        self.gidx = np.asarray(gidx, dtype=np.int64)
        self.inputs = np.asarray(inputs, dtype=np.int64).reshape(len(gidx), -1)
        # Kept by asset id, so a re-bind keeps what each device's detector has learned.
        self.detectors: dict[int, Detector] = dict(detectors or {})
        self.scanned_ns = 0

    def changed_rows(self, last: LastValues, now_ns: int) -> I64:
        since, self.scanned_ns = self.scanned_ns, now_ns
        return np.nonzero((last.updated[self.inputs] > since).any(axis=1))[0]

    def detector(self, g: int) -> Detector:
        asset = self.table.bindings[g].device.asset_id
        found = self.detectors.get(asset)
        if found is None:
            found = self.detectors[asset] = self.make()
        return found

    def process(self, last: LastValues, now_ns: int) -> None:
        if not len(self.gidx):
            return
        rows = self.changed_rows(last, now_ns)
        t = self.table
        for k in rows.tolist():
            g = int(self.gidx[k])
            if t.suppressed[g]:
                continue  # suppressed by design (a stopped machine): neither learned nor judged
            x = last.value[self.inputs[k]][None, :]
            try:
                detector = self.detector(g)
                flagged = bool(detector.update(x)[0])
            except Exception as exc:  # noqa: BLE001 - a detector's fault is reported on its rule
                self.counters.error(f"{t.bindings[g].device.name}: detector failed: {exc}",
                                    now_ns)
                continue
            self.counters.evaluations += 1
            ts = int(last.ts[self.inputs[k]].max())
            if flagged != bool(t.active[g]) or t.pending[g]:
                score = detector.describe().get("score")
                t.step(g, ts, flagged, not flagged,
                       float(score) if isinstance(score, int | float) else float("nan"))


class StaleSet:
    """No update of a point (or of any point of the device) within its timeout."""

    def __init__(self, table: BindingTable, gidx: list[int], series: list[int],
                 device_slots: list[int], timeout_s: list[float]) -> None:
        self.table = table
        self.gidx = np.asarray(gidx, dtype=np.int64)
        self.series = np.asarray(series, dtype=np.int64)  # -1: any point (use device_slots)
        self.device_slots = np.asarray(device_slots, dtype=np.int64)
        self.timeout = np.asarray([round(s * 1e9) for s in timeout_s], dtype=np.int64)

    def process(self, last: LastValues, now_ns: int) -> None:
        if not len(self.gidx):
            return
        seen = np.where(self.series >= 0, last.seen[np.maximum(self.series, 0)],
                        last.device_seen[np.maximum(self.device_slots, 0)])
        stale = now_ns - seen > self.timeout
        t = self.table
        changed = np.nonzero(stale != t.active[self.gidx])[0]
        for k in changed.tolist():
            g = int(self.gidx[k])
            ts = int(seen[k] + self.timeout[k]) if stale[k] else int(seen[k])
            t.step(g, ts, bool(stale[k]), not bool(stale[k]), float("nan"))


class RuleScan:
    """The sets of one rule that run at the scan rate, in order: its suppression first, so its
    condition is judged with the suppression of the same scan."""

    def __init__(self, sets: list[ExpressionSet | AnomalySet]) -> None:
        self.sets = sets

    @property
    def scanned_ns(self) -> int:
        return self.sets[0].scanned_ns

    @scanned_ns.setter
    def scanned_ns(self, value: int) -> None:
        for s in self.sets:
            s.scanned_ns = value

    def process(self, last: LastValues, now_ns: int) -> None:
        for s in self.sets:
            s.process(last, now_ns)
