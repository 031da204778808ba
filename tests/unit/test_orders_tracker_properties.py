"""The order tracker's accounting, property-tested without a database: every part a line's
counters add is either an order's or unassigned, none twice; an operation never exceeds its
quantity and is done only after the one before it; the result does not depend on how the
stream is cut into chunks."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.model import SampleBatch
from millnet.orders.store import OpenOperation, OrderStore
from millnet.orders.tracker import LineSeries, OrderTracker

LINES = (10, 11)
SERIES = [LineSeries(1, 10, "good"), LineSeries(2, 10, "good"), LineSeries(3, 11, "good"),
          LineSeries(4, 10, "scrap")]


class _Store:
    def __init__(self, ops: list[OpenOperation]) -> None:
        self.ops = ops

    def counters(self) -> dict[int, float]:
        return {}

    def open_operations(self, after_order: int = 0) -> list[OpenOperation]:
        return [_copy(o) for o in self.ops if o.order_id > after_order]

    def line_of_operations(self) -> dict[int, int]:
        return dict.fromkeys(LINES, 1)


def _copy(o: OpenOperation) -> OpenOperation:
    return OpenOperation(o.order_id, o.seq, o.last, o.line_id, o.quantity, o.release_s,
                         o.planned_start_s, o.status, o.good, o.scrap, o.started_s,
                         o.finished_s)


def _orders(quantities: list[tuple[int, bool]]) -> list[OpenOperation]:
    """Each order: quantity, and whether it runs on line 10 then 11 (else 11 then 10)."""
    ops = []
    for i, (qty, forward) in enumerate(quantities, start=1):
        lines = LINES if forward else LINES[::-1]
        ops += [OpenOperation(i, seq, seq == 1, line, qty, 0.0, float(i * 10 + seq),
                              "planned", 0, 0, None, None) for seq, line in enumerate(lines)]
    return ops


def _tracker(ops: list[OpenOperation]) -> OrderTracker:
    tracker = OrderTracker(cast(OrderStore, _Store(ops)), lambda lines: SERIES)
    tracker.restore()
    return tracker


streams = st.lists(st.tuples(st.sampled_from([1, 2, 3, 4]), st.integers(0, 5)),
                   min_size=1, max_size=60)


def _samples(steps: list[tuple[int, int]]) -> list[tuple[int, float, float]]:
    """Monotonic counters: each step adds to one series; (series, time, value)."""
    value = dict.fromkeys((1, 2, 3, 4), 0.0)
    rows = [(sid, 0.0, 0.0) for sid in value]  # the baselines
    for t, (sid, add) in enumerate(steps, start=1):
        value[sid] += add
        rows.append((sid, float(t), value[sid]))
    return rows


def _feed(tracker: OrderTracker, rows: list[tuple[int, float, float]]) -> None:
    batch = SampleBatch(np.array([r[0] for r in rows], np.int32),
                        np.array([int(r[1] * 1e9) for r in rows], np.int64),
                        np.array([r[2] for r in rows], np.float64),
                        np.zeros(len(rows), np.uint8))
    tracker.on_samples(batch, [], historical=False, received_ns=0)


def _state(tracker: OrderTracker, count: int) -> list[Any]:
    return [(op.status, op.good, op.scrap) for i in range(1, count + 1) for seq in (0, 1)
            if (op := tracker.operation(i, seq)) is not None]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 8), st.booleans()), min_size=1, max_size=4),
       streams, st.integers(1, 7))
def test_parts_are_conserved_and_operations_keep_their_order(
        quantities: list[tuple[int, bool]], steps: list[tuple[int, int]], cut: int) -> None:
    rows = _samples(steps)
    whole = _tracker(_orders(quantities))
    _feed(whole, rows)
    good_made = sum(add for sid, add in steps if sid != 4)
    counted = sum(good for _, good, _ in _state(whole, len(quantities)))
    assert counted + whole.unassigned_parts == good_made
    for i, (qty, _) in enumerate(quantities, start=1):
        first, second = whole.operation(i, 0), whole.operation(i, 1)
        assert first is not None and second is not None
        assert first.good <= qty and second.good <= qty
        if second.good or second.started_s is not None:
            assert first.status == "done"
        assert (first.status == "done") == (first.good == qty)
    chunked = _tracker(_orders(quantities))
    for start in range(0, len(rows), cut):  # the same stream in chunks of `cut` samples
        _feed(chunked, rows[start:start + cut])
    assert _state(chunked, len(quantities)) == _state(whole, len(quantities))
    assert chunked.unassigned_parts == whole.unassigned_parts
