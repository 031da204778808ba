"""From stored rules and the registry to the engine's evaluators: which devices each rule covers
and which series carry the points it reads.

A rule covers every device of its tenant that its scope matches (asset type, branch of the
ISA-95 tree, device name globs); a device added later is covered from the next re-bind, which
the engine starts when it sees a series it does not know. A device that lacks a point the rule
reads is listed on the rule (``unbound``), not evaluated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from millnet.analytics.anomaly.base import Detector, make_detector
from millnet.model import DataType
from millnet.rules.definitions import (
    AnomalyCondition,
    ExpressionCondition,
    RateOfChange,
    Stale,
    StateCondition,
    Threshold,
)
from millnet.rules.expr import Expression
from millnet.rules.pointsets import RateSet, StateSet, TextStateSet, ThresholdSet
from millnet.rules.table import Binding, BindingTable, DeviceRef, RuleCounters, RuleRef
from millnet.rules.tickers import AnomalySet, ExpressionSet, RuleScan, StaleSet

T = TypeVar("T")

#: Anomaly alarms return to normal only after this long without a flagged row.
ANOMALY_OFF_DELAY_S = 10.0
UNBOUND_LISTED = 20  # devices named per rule in its status; the count is exact


@dataclass(frozen=True, slots=True)
class PointRef:
    series_id: int
    datatype: DataType


Group = tuple[list[int], list[list[int]]]  # binding numbers, and their input series


@dataclass
class Compiled:
    """Everything the engine evaluates, built in a worker thread and swapped in at once."""

    table: BindingTable
    size: int  # series ids are below this
    device_slot: np.ndarray  # series -> device slot
    devices: int
    thresholds: ThresholdSet
    states: StateSet
    rates: RateSet
    texts: TextStateSet
    stale: StaleSet
    expressions: list[ExpressionSet]
    suppressions: list[ExpressionSet]
    anomalies: dict[int, AnomalySet]  # by rule id
    counters: dict[int, RuleCounters]
    rules: dict[int, RuleRef]

    scanned: list[RuleScan]  # per rule: its suppression, then its expression or detectors


class _Builder:
    def __init__(self, size: int) -> None:
        self.size = size
        self.bindings: list[Binding] = []
        self.on: list[float] = []
        self.off: list[float] = []
        self.thresholds: list[tuple[int, int, float | None, float | None, float]] = []
        self.rates: list[tuple[int, int, float | None, float | None]] = []
        self.states: list[tuple[int, int, tuple[float, ...]]] = []
        self.texts: list[tuple[int, int, tuple[str, ...]]] = []
        self.stale: list[tuple[int, int, int, float]] = []  # binding, series, asset, timeout
        self.expr: dict[int, tuple[Expression, Group]] = {}
        self.suppress: dict[int, tuple[Expression, Group]] = {}
        self.anomaly: dict[int, tuple[AnomalyCondition, Group]] = {}

    def add(self, binding: Binding, on: float, off: float) -> int:
        self.bindings.append(binding)
        self.on.append(on)
        self.off.append(off)
        return len(self.bindings) - 1


def _group(groups: dict[int, tuple[T, Group]], rule_id: int, what: T) -> Group:
    return groups.setdefault(rule_id, (what, ([], [])))[1]


def compile_rules(
    rules: Sequence[RuleRef], devices: Sequence[DeviceRef],
    points: Mapping[int, Mapping[str, PointRef]], *, max_bindings: int,
    detectors: Mapping[tuple[int, int], Detector] | None = None,
) -> Compiled:
    """Bind ``rules`` to ``devices`` (``points``: device id -> point name -> series)."""
    size = 1 + max((p.series_id for pts in points.values() for p in pts.values()), default=0)
    b = _Builder(size)
    counters: dict[int, RuleCounters] = {}
    by_tenant: dict[int, list[DeviceRef]] = defaultdict(list)
    for d in devices:
        by_tenant[d.tenant_id].append(d)
    for ref in rules:
        c = counters[ref.rule_id] = RuleCounters()
        if not ref.rule.enabled:
            continue
        for device in by_tenant.get(ref.tenant_id, ()):
            if not ref.rule.scope.matches(asset_type=device.asset_type, path=device.path,
                                          device=device.name):
                continue
            if len(b.bindings) >= max_bindings:
                c.error(f"not bound to {device.name}: the node's rules.max_bindings "
                        f"({max_bindings}) is reached", 0)
                continue
            missing = _bind(b, ref, device, points.get(device.asset_id, {}))
            if missing:
                if len(c.unbound) < UNBOUND_LISTED:
                    c.unbound.append(f"{device.name} (no point {missing})")
                c.errors += 1
                c.last_error = f"{device.name} has no point {missing}"
            else:
                c.bindings += 1
    return _assemble(b, rules, devices, points, counters, detectors or {})


def _needs(ref: RuleRef) -> list[str]:
    cond = ref.rule.condition
    needed = list(ref.rule.suppress_when.inputs) if ref.rule.suppress_when else []
    if isinstance(cond, Threshold | RateOfChange | StateCondition) or (
            isinstance(cond, Stale) and cond.point != "*"):
        needed.append(cond.point)
    elif isinstance(cond, ExpressionCondition):
        needed += cond.expression.inputs
    elif isinstance(cond, AnomalyCondition):
        needed += cond.points
    return needed


def _bind(b: _Builder, ref: RuleRef, device: DeviceRef,
          pts: Mapping[str, PointRef]) -> str | None:
    """Add the binding of ``ref`` to ``device``; the name of a missing point, or None."""
    for name in _needs(ref):
        if name not in pts:
            return name
    cond = ref.rule.condition
    if isinstance(cond, ExpressionCondition):
        g = b.add(Binding(ref, device, ""), cond.on_delay_s, cond.off_delay_s)
        gidx, inputs = _group(b.expr, ref.rule_id, cond.expression)
        gidx.append(g)
        inputs.append([pts[n].series_id for n in cond.expression.inputs])
    elif isinstance(cond, AnomalyCondition):
        g = b.add(Binding(ref, device, ", ".join(cond.points)), 0.0, ANOMALY_OFF_DELAY_S)
        gidx, inputs = _group(b.anomaly, ref.rule_id, cond)
        gidx.append(g)
        inputs.append([pts[n].series_id for n in cond.points])
    else:
        g = _bind_point(b, ref, device, pts)
    suppress = ref.rule.suppress_when
    if suppress is not None:
        gidx, inputs = _group(b.suppress, ref.rule_id, suppress)
        gidx.append(g)
        inputs.append([pts[n].series_id for n in suppress.inputs])
    return None


def _bind_point(b: _Builder, ref: RuleRef, device: DeviceRef,
                pts: Mapping[str, PointRef]) -> int:
    cond = ref.rule.condition
    if isinstance(cond, Threshold):
        limit = cond.above if cond.above is not None else cond.below
        g = b.add(Binding(ref, device, cond.point, limit), cond.on_delay_s, cond.off_delay_s)
        b.thresholds.append((g, pts[cond.point].series_id, cond.above, cond.below,
                             cond.deadband))
    elif isinstance(cond, RateOfChange):
        limit = cond.max_rise_per_s if cond.max_rise_per_s is not None else cond.max_fall_per_s
        g = b.add(Binding(ref, device, cond.point, limit), cond.on_delay_s, cond.off_delay_s)
        b.rates.append((g, pts[cond.point].series_id, cond.max_rise_per_s, cond.max_fall_per_s))
    elif isinstance(cond, StateCondition):
        g = b.add(Binding(ref, device, cond.point), cond.on_delay_s, cond.off_delay_s)
        point = pts[cond.point]
        if point.datatype.is_text:
            b.texts.append((g, point.series_id, cond.texts))
        else:
            b.states.append((g, point.series_id, cond.values))
    else:
        assert isinstance(cond, Stale)
        g = b.add(Binding(ref, device, cond.point, cond.timeout_s), 0.0, 0.0)
        series = -1 if cond.point == "*" else pts[cond.point].series_id
        b.stale.append((g, series, device.asset_id, cond.timeout_s))
    return g


def _assemble(b: _Builder, rules: Sequence[RuleRef], devices: Sequence[DeviceRef],
              points: Mapping[int, Mapping[str, PointRef]], counters: dict[int, RuleCounters],
              detectors: Mapping[tuple[int, int], Detector]) -> Compiled:
    table = BindingTable(b.bindings, b.on, b.off)
    size = b.size
    slots = {d.asset_id: i for i, d in enumerate(devices)}
    device_slot = np.full(size + 1, -1, dtype=np.int64)
    for device_id, pts in points.items():
        if device_id in slots:
            for p in pts.values():
                device_slot[p.series_id] = slots[device_id]
    texts = TextStateSet(table)
    for g, series, wanted in b.texts:
        texts.add(g, series, wanted)
    anomalies = {}
    for rule_id, (cond, (gidx, inputs)) in b.anomaly.items():
        mine = {a: d for (r, a), d in detectors.items() if r == rule_id}
        anomalies[rule_id] = AnomalySet(table, counters[rule_id], _factory(cond), gidx, inputs,
                                        mine)
    th, ra, st, sl = b.thresholds, b.rates, b.states, b.stale
    compiled = Compiled(
        table=table, size=size, device_slot=device_slot, devices=len(devices),
        thresholds=ThresholdSet(table, [e[0] for e in th], [e[1] for e in th], size,
                                [e[2] for e in th], [e[3] for e in th], [e[4] for e in th]),
        states=StateSet(table, [e[0] for e in st], [e[1] for e in st], size,
                        [e[2] for e in st]),
        rates=RateSet(table, [e[0] for e in ra], [e[1] for e in ra], size, [e[2] for e in ra],
                      [e[3] for e in ra]),
        texts=texts,
        stale=StaleSet(table, [e[0] for e in sl], [e[1] for e in sl],
                       [slots.get(e[2], -1) for e in sl], [e[3] for e in sl]),
        expressions=[ExpressionSet(table, counters[r], expr, gidx, inputs, suppression=False)
                     for r, (expr, (gidx, inputs)) in b.expr.items()],
        suppressions=[ExpressionSet(table, counters[r], expr, gidx, inputs, suppression=True)
                      for r, (expr, (gidx, inputs)) in b.suppress.items()],
        anomalies=anomalies, counters=counters, rules={r.rule_id: r for r in rules},
        scanned=[])
    by_rule: dict[int, list[ExpressionSet | AnomalySet]] = defaultdict(list)
    for rule_id, s in zip(b.suppress, compiled.suppressions, strict=True):
        by_rule[rule_id].append(s)
    for rule_id, e in zip(b.expr, compiled.expressions, strict=True):
        by_rule[rule_id].append(e)
    for rule_id, a in compiled.anomalies.items():
        by_rule[rule_id].append(a)
    compiled.scanned = [RuleScan(sets) for sets in by_rule.values()]
    return compiled


def _factory(cond: AnomalyCondition) -> Callable[[], Detector]:
    def make() -> Detector:
        return make_detector(cond.detector, len(cond.points), train_samples=cond.train_samples,
                             **dict(cond.params))
    return make
