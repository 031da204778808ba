"""The rule engine on a real registry and rule store: every kind of rule, scopes, faults that
stay with their rule, devices added later, suppression by design."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from millnet.model import AssetKind, ConditionChange, DataType, PointSpec, SampleBatch, TextSample
from millnet.registry import Registry
from millnet.rules.definitions import parse_rule
from millnet.rules.engine import RuleEngine
from millnet.rules.settings import RulesSection
from millnet.rules.store import RuleStore

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000
POINTS = [PointSpec("Temp", DataType.DOUBLE), PointSpec("Current", DataType.DOUBLE),
          PointSpec("Rated", DataType.DOUBLE), PointSpec("State", DataType.INT32),
          PointSpec("Mode", DataType.STRING)]


class World:
    def __init__(self, tmp: Path) -> None:
        self.registry = Registry.open(f"sqlite:///{tmp / 'r.db'}")
        self.tenant = self.registry.ensure_tenant("acme").id
        self.rules = RuleStore(self.registry.engine)
        self.changes: list[ConditionChange] = []
        self.series: dict[tuple[str, str], int] = {}
        self.devices: dict[str, int] = {}
        self.clock = time.time_ns()  # the node's clock: a second passes between chunks

    def device(self, site: str, name: str, asset_type: str | None) -> None:
        ids = self.registry.ensure_path(self.tenant, [
            (AssetKind.ENTERPRISE, "Acme"), (AssetKind.SITE, site), (AssetKind.AREA, "A"),
            (AssetKind.LINE, "L1"), (AssetKind.DEVICE, name)])
        self.devices[name] = ids[-1]
        if asset_type:
            self.registry.set_asset_type(self.tenant, ids[-1], asset_type)
        for point, sid in self.registry.upsert_points(self.tenant, ids[-1], POINTS).items():
            self.series[(name, point)] = sid

    def rule(self, **data: Any) -> int:
        return self.rules.create(self.tenant, parse_rule(data)).id

    def engine(self) -> RuleEngine:
        return RuleEngine(self.rules, self.registry, self.changes.extend,
                          RulesSection(scan_ms=1))

    def feed(self, engine: RuleEngine, samples: Sequence[tuple[str, str, float, float]],
             quality: int = 0) -> None:
        """(device, point, seconds after T0, value), as one chunk."""
        batch = SampleBatch(
            np.array([self.series[(d, p)] for d, p, _, _ in samples], dtype=np.int32),
            np.array([T0 + int(t * S) for _, _, t, _ in samples], dtype=np.int64),
            np.array([v for *_, v in samples], dtype=np.float64),
            np.full(len(samples), quality, dtype=np.uint8))
        self.clock += S
        engine.on_samples(batch, [], historical=False, received_ns=self.clock)

    def taken(self) -> list[tuple[str, bool, float | None]]:
        names = {v: k for k, v in self.devices.items()}
        out = [(names[c.asset_id], c.active, c.value) for c in self.changes]
        self.changes.clear()
        return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.device("Suzhou", "CNC-1", "cnc")
    w.device("Suzhou", "CNC-2", "cnc")
    w.device("Wuxi", "PRESS-1", "press")
    yield w
    w.registry.close()


def started(world: World) -> RuleEngine:
    engine = world.engine()
    asyncio.run(engine.start())
    return engine


def test_threshold_with_deadband_covers_every_machine_of_its_type(world: World) -> None:
    world.rule(name="hot", kind="threshold", point="Temp", above=80, deadband=2,
               applies_to={"asset_type": "cnc"}, priority="high",
               message="{device} {point} {value:.1f} above {limit}")
    engine = started(world)
    world.feed(engine, [("CNC-1", "Temp", 1, 70), ("CNC-2", "Temp", 1, 81),
                        ("PRESS-1", "Temp", 1, 99), ("CNC-1", "Temp", 2, 80.5)])
    assert world.taken() == [("CNC-2", True, 81.0), ("CNC-1", True, 80.5)]
    world.feed(engine, [("CNC-2", "Temp", 3, 79), ("CNC-2", "Temp", 4, 78.5),
                        ("CNC-2", "Temp", 5, 77.9)])
    changes = list(world.changes)
    assert world.taken() == [("CNC-2", False, 77.9)], "cleared only below 80 - 2"
    assert changes[0].message == "CNC-2 Temp 77.9 above 80.0"
    status = engine.status(1)
    assert status is not None and status.bindings == 2 and status.active == 1
    assert status.evaluations == 6


def test_on_delay_needs_the_condition_to_hold_and_the_timer_completes_it(world: World) -> None:
    world.rule(name="hot", kind="threshold", point="Temp", above=80, on_delay="5s",
               applies_to={"devices": ["CNC-1"]})
    engine = started(world)
    world.feed(engine, [("CNC-1", "Temp", 0, 90), ("CNC-1", "Temp", 3, 70),
                        ("CNC-1", "Temp", 4, 90), ("CNC-1", "Temp", 8, 91)])
    assert world.taken() == [], "a blip shorter than the delay raises nothing"
    world.feed(engine, [("CNC-1", "Temp", 9, 92)])
    assert world.taken() == [("CNC-1", True, 92.0)]
    world.feed(engine, [("CNC-1", "Temp", 10, 10)])
    world.taken()
    world.feed(engine, [("CNC-1", "Temp", 20, 95)])  # then silence: report by exception
    engine.tick(T0 + 24 * S)
    assert world.taken() == []
    engine.tick(T0 + 25 * S)
    assert [(d, a) for d, a, _ in world.taken()] == [("CNC-1", True)]
    assert world.changes == []


def test_rate_state_text_and_stale(world: World) -> None:
    world.rule(name="heating", kind="rate", point="Temp", max_rise_per_s=2,
               applies_to={"devices": ["CNC-1"]})
    world.rule(name="fault", kind="state", point="State", values=[4],
               applies_to={"devices": ["CNC-1"]})
    world.rule(name="manual", kind="state", point="Mode", texts=["MANUAL"],
               applies_to={"devices": ["CNC-1"]})
    world.rule(name="silent", kind="stale", point="Current", timeout="10s",
               applies_to={"devices": ["CNC-1"]})
    engine = world.engine()
    asyncio.run(engine.start())
    world.feed(engine, [("CNC-1", "Temp", 0, 20), ("CNC-1", "Temp", 1, 21),
                        ("CNC-1", "Temp", 2, 25), ("CNC-1", "State", 2, 4)])
    assert sorted((c.rule_name, c.active, c.value) for c in world.changes) == [
        ("fault", True, 4.0), ("heating", True, 4.0)]
    world.changes.clear()
    world.feed(engine, [("CNC-1", "Temp", 3, 25.5), ("CNC-1", "State", 3, 1)])
    engine.on_samples(SampleBatch.empty(), [TextSample(world.series[("CNC-1", "Mode")],
                                                       T0 + 4 * S, "MANUAL")],
                      historical=False, received_ns=T0 + 4 * S)
    assert sorted((c.rule_name, c.active) for c in world.changes) == [
        ("fault", False), ("heating", False), ("manual", True)]
    world.changes.clear()
    # Current never reported: stale once the timeout has passed since the engine started.
    engine.tick(time.time_ns() + 11 * S)
    assert [(c.rule_name, c.active) for c in world.changes] == [("silent", True)]
    world.changes.clear()
    world.feed(engine, [("CNC-1", "Current", 5, 3.0)])
    assert [(c.rule_name, c.active) for c in world.changes] == [("silent", False)]


def test_rules_report_their_own_faults_and_the_others_go_on(world: World) -> None:
    ratio = world.rule(name="overload", kind="expression",
                       expression="Current / Rated > 1.1 and State == 1",
                       applies_to={"branch": "Acme/Suzhou"})
    hot = world.rule(name="hot", kind="threshold", point="Temp", above=80,
                     applies_to={"branch": "Acme/Suzhou"})
    engine = started(world)
    world.feed(engine, [("CNC-1", "Rated", 0, 10), ("CNC-1", "State", 0, 1),
                        ("CNC-1", "Current", 0, 12), ("CNC-2", "Rated", 0, 0),
                        ("CNC-2", "State", 0, 1), ("CNC-2", "Current", 0, 5),
                        ("CNC-2", "Temp", 0, 85)])
    got = sorted((d, a) for d, a, _ in world.taken())
    assert got == [("CNC-1", True), ("CNC-2", True)]  # CNC-1 overload, CNC-2 hot
    status = engine.status(ratio)
    assert status is not None and status.errors == 1
    assert status.last_error is not None and "CNC-2" in status.last_error
    assert "division by zero" in status.last_error
    hot_status = engine.status(hot)
    assert hot_status is not None and hot_status.errors == 0 and hot_status.active == 1


def test_suppression_by_design_and_devices_added_later(world: World) -> None:
    world.rule(name="hot", kind="threshold", point="Temp", above=80,
               suppress_when="State == 0", applies_to={"asset_type": "cnc"})
    engine = started(world)

    async def scenario() -> None:
        runner = asyncio.create_task(engine.run())
        world.feed(engine, [("CNC-1", "State", 0, 0), ("CNC-1", "Temp", 0, 90)])
        first = world.changes[-1]
        assert first.active and first.suppressed
        world.feed(engine, [("CNC-1", "State", 1, 1)])
        assert world.changes[-1].active and not world.changes[-1].suppressed
        world.device("Wuxi", "CNC-9", "cnc")  # a machine added while the node runs
        world.feed(engine, [("CNC-9", "Temp", 2, 95)])  # unknown series: re-bind
        for _ in range(100):
            if engine.rebinds >= 2:
                break
            await asyncio.sleep(0.02)
        world.feed(engine, [("CNC-9", "Temp", 3, 96)])
        runner.cancel()
        assert world.taken()[-1] == ("CNC-9", True, 96.0)
        assert engine.bindings == 3

    asyncio.run(scenario())


def test_an_anomaly_rule_learns_then_flags_and_rests_while_suppressed(world: World) -> None:
    rule = world.rule(name="odd", kind="anomaly", detector="robust", points=["Temp", "Current"],
                      train_samples=20, suppress_when="State == 0",
                      applies_to={"devices": ["CNC-1"]})
    engine = started(world)
    rng = np.random.default_rng(3)
    for i in range(30):  # normal operation: learned
        world.feed(engine, [("CNC-1", "State", i, 1), ("CNC-1", "Temp", i, 50 + rng.normal()),
                            ("CNC-1", "Current", i, 20 + rng.normal())])
    assert world.changes == []
    world.feed(engine, [("CNC-1", "State", 40, 0)])  # stopped: suppressed by design
    for i in range(41, 45):
        world.feed(engine, [("CNC-1", "Temp", i, 22.0), ("CNC-1", "Current", i, 0.0)])
    assert [c.active for c in world.changes] == [False], "only the suppression is reported"
    world.changes.clear()
    world.feed(engine, [("CNC-1", "State", 50, 1), ("CNC-1", "Temp", 50, 95.0),
                        ("CNC-1", "Current", 50, 45.0)])
    raised = [c for c in world.changes if c.active]
    assert raised and not raised[-1].suppressed
    assert raised[-1].message.startswith("CNC-1: anomaly in Temp, Current (score ")
    status = engine.status(rule)
    assert status is not None and status.detail["detectors"]
