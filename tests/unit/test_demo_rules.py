"""The demo's rules file and the factory's coolant incidents that make its alarms happen."""

from __future__ import annotations

import numpy as np

from millnet.analytics.anomaly.base import make_detector
from millnet.demo_insight import RULES_FILE, asset_types, coolant_incidents
from millnet.rules.definitions import (
    AnomalyCondition,
    ExpressionCondition,
    Rule,
    StateCondition,
    Threshold,
)
from millnet.rules.files import load_rule_file
from millnet.sim import modbus_server
from millnet.sim.factory import TRIP_DEGC, FactorySignals, MachineState, plant_layout


def _points(rule: Rule) -> set[str]:
    c = rule.condition
    named: set[str] = set(rule.suppress_when.inputs) if rule.suppress_when else set()
    if isinstance(c, Threshold | StateCondition):
        named.add(c.point)
    elif isinstance(c, ExpressionCondition):
        named |= set(c.expression.inputs)
    elif isinstance(c, AnomalyCondition):
        named |= set(c.points)
    return named


def test_the_demo_rules_load_and_name_points_their_devices_have() -> None:
    rules = load_rule_file(RULES_FILE)
    kinds = {r.kind.value for r in rules}
    assert kinds == {"threshold", "state", "stale", "expression", "anomaly"}
    machines = plant_layout()
    types = set(asset_types(machines).values())
    points = {m.kind: {p.name for p in m.points} for m in machines}
    points["packer"] = {r["point"] for r in modbus_server.plant_register_map()
                        if r["device"].endswith("packer-1")}
    points["energy-meter"] = {r["point"] for r in modbus_server.plant_register_map()
                              if r["device"].endswith("meter-1")}
    for rule in rules:
        kind = rule.scope.asset_type
        assert kind is None or kind in types, (rule.name, kind)
        if kind in points:  # a rule on a point its devices lack would stay unbound
            assert _points(rule) <= points[kind], (rule.name, _points(rule) - points[kind])
        if isinstance(rule.condition, AnomalyCondition):
            c = rule.condition
            make_detector(c.detector, n_features=len(c.points), train_samples=c.train_samples,
                          **dict(c.params))
            assert c.train_samples <= 60  # trained within a minute of the demo at 1 Hz
    by_name = {r.name: r for r in rules}
    assert by_name["machine-fault"].priority.label == "high"
    assert by_name["spindle-hot"].suppress_when is not None


def test_a_coolant_pump_out_heats_the_spindle_until_the_machine_trips_and_is_repaired(
) -> None:
    machines = plant_layout()
    bad, out = coolant_incidents(machines)
    assert bad and out
    signals = FactorySignals(machines, seed=3, warm=True, bad_pumps=bad, pumps_out=out)
    m = out[0]
    names = [p.name for p in machines[m].points]
    rows = np.flatnonzero(signals.machine_of == m)
    spindle, coolant = rows[names.index("Spindle/Temperature")], rows[
        names.index("Coolant/Pressure")]
    first = signals.step(1.0)
    assert first[spindle] > 50  # warm: the plant ran before
    hottest, tripped = 0.0, False
    for _ in range(1800):
        running_out = signals.state[m] == MachineState.RUNNING and signals.coolant_out[m]
        values = signals.step(1.0)
        if running_out and signals.state[m] == MachineState.RUNNING:
            assert values[coolant] < 30  # a quarter of 45 bar, and noise
        hottest = max(hottest, float(values[spindle]))
        if signals.state[m] == MachineState.FAULT and hottest >= TRIP_DEGC - 1:
            tripped = True
            assert not signals.coolant_out[m]  # repaired while it is down
            break
    assert hottest > 80 and tripped


def test_without_incidents_no_pump_is_ever_out() -> None:
    signals = FactorySignals(plant_layout(1, 1, 3), seed=5)
    for _ in range(600):
        signals.step(1.0)
        assert not signals.coolant_out.any()
