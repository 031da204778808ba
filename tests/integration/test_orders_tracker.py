"""The order tracker over a real registry and order store (SQLite): parts go to the ready
operation of their line, in routing order, after the release; counter resets, late orders and
parts nobody ordered; what it wrote is what a restarted tracker goes on from."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from millnet.model import AssetKind, DataType, PointSpec, SampleBatch
from millnet.ordering import line_series
from millnet.orders.catalog import parse_product
from millnet.orders.service import OrderService
from millnet.orders.store import OrderStore
from millnet.orders.tracker import OrderTracker
from millnet.registry import Registry
from tests.integration.registry_fixtures import registry, registry_url

__all__ = ["registry", "registry_url"]  # fixtures, imported to be found by pytest

T0 = 1_800_000_000.0
POINTS = [PointSpec("State", DataType.INT32), PointSpec("Parts/Good", DataType.INT64),
          PointSpec("Parts/Scrap", DataType.INT64)]


class Plant:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.tenant = registry.ensure_tenant("acme").id
        self.series: dict[tuple[str, str, str], int] = {}
        for line in ("L1", "L2"):
            for machine in ("m1", "m2"):
                path = [(AssetKind.ENTERPRISE, "acme"), (AssetKind.SITE, "S"),
                        (AssetKind.AREA, "A"), (AssetKind.LINE, line),
                        (AssetKind.DEVICE, f"{line}-{machine}")]
                device = registry.ensure_path(self.tenant, path)[-1]
                ids = registry.upsert_points(self.tenant, device, POINTS)
                for name, sid in ids.items():
                    self.series[line, machine, name] = sid
        self.store = OrderStore(registry)
        self.service = OrderService(self.store, registry, node_prefix="88.1")
        self.service.define(self.tenant, parse_product({
            "name": "p", "options": [{"id": "lead", "default": "no", "choices": [
                {"id": "no"}, {"id": "yes", "lead_time": "1h"}]}],
            "routing": [{"id": "one", "line": "S/A/L1", "cycle_s": 1},
                        {"id": "two", "line": "S/A/L2", "cycle_s": 1}]}))

    def tracker(self) -> OrderTracker:
        tracker = OrderTracker(self.store, line_series(self.registry, "State", "Parts/Good",
                                                       "Parts/Scrap"))
        tracker.restore()
        return tracker

    def feed(self, tracker: OrderTracker, rows: list[tuple[str, str, str, float, float]],
             ) -> None:
        """(line, machine, point, seconds after T0, value) rows, in one chunk."""
        batch = SampleBatch(
            np.array([self.series[r[0], r[1], r[2]] for r in rows], np.int32),
            np.array([int((T0 + r[3]) * 1e9) for r in rows], np.int64),
            np.array([r[4] for r in rows], np.float64), np.zeros(len(rows), np.uint8))
        tracker.on_samples(batch, [], historical=False, received_ns=0)


@pytest.fixture
def plant(registry: Registry) -> Iterator[Plant]:
    """On SQLite and on PostgreSQL (``registry`` of the registry fixtures)."""
    yield Plant(registry)


def _status(tracker: OrderTracker, order: int) -> list[tuple[str, int, int]]:
    ops = [tracker.operation(order, seq) for seq in (0, 1)]
    return [(op.status, op.good, op.scrap) for op in ops if op is not None]


def test_parts_advance_operations_in_routing_order(plant: Plant) -> None:
    first = plant.service.place(plant.tenant, "p", {}, 5, now_s=T0).order
    second = plant.service.place(plant.tenant, "p", {}, 4, now_s=T0).order
    assert second.operations[0].planned_start_s >= first.operations[0].planned_end_s
    tracker = plant.tracker()
    # baselines (no parts yet), then L2 makes parts: nobody's order is ready there
    plant.feed(tracker, [("L1", "m1", "Parts/Good", 0, 100), ("L1", "m2", "Parts/Good", 0, 7),
                         ("L2", "m1", "Parts/Good", 0, 0), ("L1", "m1", "Parts/Scrap", 0, 3)])
    plant.feed(tracker, [("L2", "m1", "Parts/Good", 1, 2)])
    assert _status(tracker, first.id) == [("planned", 0, 0), ("planned", 0, 0)]
    assert tracker.unassigned_parts == 2
    # L1: two machines, several samples each: 1 + 4 parts at t=2 finish the first order; the
    # 2 parts and the scrap part at t=3 are the second's
    plant.feed(tracker, [("L1", "m1", "Parts/Good", 2, 101), ("L1", "m1", "Parts/Good", 3, 103),
                         ("L1", "m2", "Parts/Good", 2, 11), ("L1", "m1", "Parts/Scrap", 3, 4)])
    assert _status(tracker, first.id) == [("done", 5, 0), ("planned", 0, 0)]
    assert _status(tracker, second.id) == [("started", 2, 1), ("planned", 0, 0)]
    # a counter reset: the new value is what was made since
    plant.feed(tracker, [("L1", "m2", "Parts/Good", 4, 1), ("L2", "m1", "State", 4, 1)])
    assert _status(tracker, second.id)[0] == ("started", 3, 1)
    assert _status(tracker, first.id)[1] == ("started", 0, 0)  # running: started
    plant.feed(tracker, [("L2", "m1", "Parts/Good", 5, 9)])
    assert _status(tracker, first.id)[1] == ("done", 5, 0)
    assert tracker.unassigned_parts == 2 + 2  # the second order's step two is not ready
    asyncio.run(tracker.flush())
    done = plant.store.get_order(first.id)
    assert done.status == "finished" and done.started_s == T0 + 2
    assert done.finished_s == T0 + 5
    assert [(o.status, o.good, o.scrap) for o in done.operations] == [("done", 5, 0),
                                                                      ("done", 5, 0)]
    # a restarted tracker goes on from the stored counters: 103 -> 104 is one more part
    again = plant.tracker()
    plant.feed(again, [("L1", "m1", "Parts/Good", 6, 104)])
    assert _status(again, second.id)[0] == ("done", 4, 1)
    assert plant.store.get_order(second.id).status == "in_progress"


def test_nothing_is_made_for_an_order_before_its_release(plant: Plant) -> None:
    late = plant.service.place(plant.tenant, "p", {"lead": "yes"}, 2, now_s=T0).order
    assert late.release_s == T0 + 3600 and late.operations[0].planned_start_s >= T0 + 3600
    tracker = plant.tracker()
    plant.feed(tracker, [("L1", "m1", "Parts/Good", 0, 0), ("L1", "m1", "Parts/Good", 10, 5)])
    assert _status(tracker, late.id)[0] == ("planned", 0, 0)
    plant.feed(tracker, [("L1", "m1", "Parts/Good", 3601, 8)])
    assert _status(tracker, late.id)[0] == ("done", 2, 0)


def test_new_orders_are_picked_up_by_refresh(plant: Plant) -> None:
    tracker = plant.tracker()
    order = plant.service.place(plant.tenant, "p", {}, 1, now_s=T0).order
    asyncio.run(tracker.refresh())
    plant.feed(tracker, [("L1", "m1", "Parts/Good", 0, 0), ("L1", "m1", "Parts/Good", 1, 1)])
    assert _status(tracker, order.id)[0] == ("done", 1, 0)


def test_orders_placed_at_once_never_book_a_line_twice(plant: Plant) -> None:
    with ThreadPoolExecutor(4) as pool:
        placed = list(pool.map(lambda q: plant.service.place(plant.tenant, "p", {}, q,
                                                             now_s=T0).order, range(1, 13)))
    booked: dict[int, list[tuple[float, float]]] = {}
    for order in placed:
        assert order.promised_s == order.operations[-1].planned_end_s
        for before, after in itertools.pairwise(order.operations):
            assert before.planned_end_s <= after.planned_start_s
        for op in order.operations:
            booked.setdefault(op.line_id, []).append((op.planned_start_s, op.planned_end_s))
    for intervals in booked.values():
        intervals.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals)), intervals
    assert len({o.identifier for o in placed}) == 12
