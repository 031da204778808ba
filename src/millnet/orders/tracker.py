"""Live tracking of work orders from machine data: a :class:`~millnet.ingest.tap.SampleTap`.

It follows the part counters (``Parts/Good``, ``Parts/Scrap``) and ``State`` of the devices of
every line that has an operation to do, and advances the operations:

* **Ready.** An operation may take parts once the order is released (its lead time has
  passed, by the samples' time) and its previous operation is done. A line works its ready
  operations in the order of their planned start.
* **Started.** The first part counted, or the first running ``State`` of one of the line's
  machines, while the operation is ready, starts it (and the order, if it is its first).
* **Counts.** The increase of a line's good counters (over all its machines) goes to its first
  ready operation until that has the order's quantity, the rest to the next ready one; parts
  no operation is ready for are not an order's (``unassigned_parts``). Scrap goes to the
  operation being worked. Counters are monotonic; a decrease is a reset (the new value is what
  was made since), as in the KPI tracker; the last value of each counter is stored, so that
  what was made while the node was down is counted when the next sample arrives.
* **Done.** An operation is done when it has the quantity; the order is finished when its
  last operation is.

The tap selects its series from a chunk with a lookup table indexed by series id, computes the
increments and sums them per line and timestamp with numpy (O(chunk)); Python only loops over
those (line, time) groups, in time order, so that an operation that becomes ready within a
chunk takes only the parts made after that, whatever the chunks. What changed is written
every ``flush_s`` by :meth:`run`, which also loads orders placed since (the service writes
them; the tap never waits for the database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from millnet.errors import StorageError
from millnet.model import SampleBatch, TextSample
from millnet.orders.store import OpenOperation, OrderProgress, OrderStore

log = logging.getLogger(__name__)

_STATE, _GOOD, _SCRAP = 1, 2, 3
REBIND_S = 10.0
REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class LineSeries:
    """A series the tracker reads: its line and what it is (good, scrap or state)."""

    series_id: int
    line_id: int
    role: str  # "good", "scrap" or "state"


#: (time, line, good, scrap) columns of counter increments and running states
_Events = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64],
                npt.NDArray[np.float64]]
#: Finds the series of the given lines (line id -> tenant id); blocking, run in a thread.
FindSeries = Callable[[dict[int, int]], list[LineSeries]]


class OrderTracker:
    """Work orders' progress from the stream (event loop only, except :meth:`restore`)."""

    name = "orders"

    def __init__(self, store: OrderStore, find_series: FindSeries,
                 running_states: Iterable[int] = (1,), flush_s: float = 1.0) -> None:
        self._store = store
        self._find_series = find_series
        self._running = np.array(sorted(running_states), dtype=np.float64)
        self.flush_s = flush_s
        self._ops: dict[tuple[int, int], OpenOperation] = {}
        self._queues: dict[int, list[OpenOperation]] = {}  # line -> ops not done, plan order
        self._orders: dict[int, OrderProgress] = {}
        self._dirty_ops: set[tuple[int, int]] = set()
        self._dirty_orders: set[int] = set()
        self._carry: dict[int, float] = {}
        self._dirty_counters: set[int] = set()
        self._last_order = 0
        self._role: npt.NDArray[np.int8] = np.zeros(0, np.int8)
        self._line: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._last: npt.NDArray[np.float64] = np.zeros(0, np.float64)
        self._bound: frozenset[int] = frozenset()
        self._bound_at = 0.0
        self.unassigned_parts = 0

    # -- loading --------------------------------------------------------------------------------
    def restore(self) -> None:
        """Load the open operations, the counters and the lines' series (blocking)."""
        self._carry = self._store.counters()
        self._add(self._store.open_operations())
        self._bind(self._find_series(self._store.line_of_operations()))

    def _add(self, ops: Sequence[OpenOperation]) -> None:
        for op in ops:
            key = (op.order_id, op.seq)
            if key in self._ops:
                continue
            self._ops[key] = op
            self._last_order = max(self._last_order, op.order_id)
            self._orders.setdefault(op.order_id, OrderProgress(op.order_id, "scheduled",
                                                               None, None))
            if op.status != "done":
                queue = self._queues.setdefault(op.line_id, [])
                queue.append(op)
                queue.sort(key=lambda o: (o.planned_start_s, o.order_id, o.seq))
            if op.started_s is not None:
                self._start_order(op.order_id, op.started_s, dirty=False)

    def _bind(self, series: list[LineSeries]) -> None:
        size = max((s.series_id for s in series), default=-1) + 1
        role = np.zeros(size, np.int8)
        line = np.zeros(size, np.int64)
        last = np.full(size, np.nan)
        codes = {"state": _STATE, "good": _GOOD, "scrap": _SCRAP}
        for s in series:
            role[s.series_id], line[s.series_id] = codes[s.role], s.line_id
            if s.series_id in self._carry:
                last[s.series_id] = self._carry[s.series_id]
        for sid in np.flatnonzero(self._role[:min(size, self._role.size)] > 0).tolist():
            if not np.isnan(self._last[sid]):
                last[sid] = self._last[sid]
        self._role, self._line, self._last = role, line, last
        self._bound = frozenset(s.line_id for s in series)

    async def refresh(self) -> None:
        """Load orders placed since, and bind the series of their lines (in a thread)."""
        new = await asyncio.to_thread(self._store.open_operations, self._last_order)
        self._add(new)
        lines = {line for line, q in self._queues.items() if q}
        now = time.monotonic()
        # Machines appear with their first data: a line without any is looked at again every
        # REBIND_S, the others every REFRESH_S (a machine added to a line), not every second.
        wait = REBIND_S if not lines <= self._bound else REFRESH_S
        if new or now - self._bound_at >= wait:
            self._bound_at = now
            found = await asyncio.to_thread(self._find_series,
                                            await asyncio.to_thread(
                                                self._store.line_of_operations))
            self._bind(found)

    # -- the tap --------------------------------------------------------------------------------
    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *,
                   historical: bool, received_ns: int) -> None:
        if not len(batch) or not self._role.size:
            return
        sid = batch.series_id
        at = np.flatnonzero((sid >= 0) & (sid < self._role.size))
        at = at[self._role[sid[at]] > 0]
        at = at[(batch.quality[at] <= 1) & ~np.isnan(batch.value[at])]
        if not at.size:
            return
        s, v = sid[at].astype(np.int64), batch.value[at]
        ts = batch.ts_ns[at].astype(np.float64) / 1e9
        role = self._role[s]
        counter = role != _STATE
        parts: list[_Events] = []
        if counter.any():
            parts.append(self._counts(s[counter], v[counter], ts[counter], role[counter]))
        running = ~counter & np.isin(v, self._running)
        if running.any():  # a line's first and last running sample start what is ready then
            lines, t = self._line[s[running]], ts[running]
            _, first = np.unique(lines, return_index=True)
            _, last = np.unique(lines[::-1], return_index=True)
            pick = np.r_[first, lines.size - 1 - last]
            zero = np.zeros(pick.size)
            parts.append((t[pick], lines[pick], zero, zero))
        if parts:
            self._apply(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def _counts(self, s: npt.NDArray[np.int64], v: npt.NDArray[np.float64],
                ts: npt.NDArray[np.float64], role: npt.NDArray[np.int8]) -> _Events:
        """The counter increments: (time, line, good, scrap) of every sample that adds."""
        order = np.lexsort((ts, s))
        s, v, ts, role = s[order], v[order], ts[order], role[order]
        first = np.r_[True, s[1:] != s[:-1]]
        prev = np.r_[np.nan, v[:-1]]
        prev[first] = self._last[s[first]]
        delta = np.where(np.isnan(prev), 0.0, np.where(v >= prev, v - prev, v))
        last = np.r_[s[1:] != s[:-1], True]
        self._last[s[last]] = v[last]
        for sid, value in zip(s[last].tolist(), v[last].tolist(), strict=True):
            self._carry[sid] = value
            self._dirty_counters.add(sid)
        adds = delta > 0
        good = np.where(role[adds] == _GOOD, delta[adds], 0.0)
        return ts[adds], self._line[s[adds]], good, delta[adds] - good

    def _apply(self, ts: npt.NDArray[np.float64], lines: npt.NDArray[np.int64],
               good: npt.NDArray[np.float64], scrap: npt.NDArray[np.float64]) -> None:
        """Advance the lines in time order, the increments of one line at one time together
        (the machines of a line publish together): Python loops over (time, line) groups, not
        samples."""
        if not ts.size:
            return
        order = np.lexsort((lines, ts))
        ts, lines, good, scrap = ts[order], lines[order], good[order], scrap[order]
        starts = np.flatnonzero(np.r_[True, (ts[1:] != ts[:-1]) | (lines[1:] != lines[:-1])])
        goods = np.add.reduceat(good, starts)
        scraps = np.add.reduceat(scrap, starts)
        for t, line, g, sc in zip(ts[starts].tolist(), lines[starts].tolist(),
                                  np.rint(goods).tolist(), np.rint(scraps).tolist(),
                                  strict=True):
            self._advance(line, int(g), int(sc), t, t)

    def _ready(self, op: OpenOperation, at_s: float) -> bool:
        if at_s < op.release_s:
            return False
        before = self._ops.get((op.order_id, op.seq - 1))
        return op.seq == 0 or before is None or before.status == "done"

    def _advance(self, line: int, good: int, scrap: int, first_s: float, last_s: float) -> None:
        queue = self._queues.get(line)
        for op in list(queue or ()):
            if not self._ready(op, last_s):
                continue
            if op.started_s is None:
                op.status, op.started_s = "started", max(first_s, op.release_s)
                self._start_order(op.order_id, op.started_s)
            take = min(good, op.quantity - op.good)
            op.good += take
            good -= take
            op.scrap += scrap
            scrap = 0
            self._dirty_ops.add((op.order_id, op.seq))
            if op.good >= op.quantity:
                op.status, op.finished_s = "done", last_s
                assert queue is not None
                queue.remove(op)
                if op.last:
                    self._finish_order(op.order_id, last_s)
            if good <= 0:
                return
        self.unassigned_parts += max(good, 0)

    def _start_order(self, order_id: int, at_s: float, *, dirty: bool = True) -> None:
        p = self._orders[order_id]
        if p.started_s is None:
            self._orders[order_id] = OrderProgress(order_id, "in_progress", at_s, None)
            if dirty:
                self._dirty_orders.add(order_id)

    def _finish_order(self, order_id: int, at_s: float) -> None:
        p = self._orders[order_id]
        self._orders[order_id] = OrderProgress(order_id, "finished", p.started_s, at_s)
        self._dirty_orders.add(order_id)

    # -- persistence ----------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what changed (in a thread); kept for the next try on a storage error."""
        ops = [self._copy(self._ops[k]) for k in self._dirty_ops]
        progress = [self._orders[o] for o in self._dirty_orders]
        counters = {sid: self._carry[sid] for sid in self._dirty_counters}
        if not ops and not progress and not counters:
            return
        self._dirty_ops, self._dirty_orders, self._dirty_counters = set(), set(), set()
        try:
            await asyncio.to_thread(self._store.save_progress, ops, progress, counters)
        except StorageError as exc:
            log.warning("orders: progress not written, kept for the next flush: %s", exc)
            self._dirty_ops.update((o.order_id, o.seq) for o in ops)
            self._dirty_orders.update(p.order_id for p in progress)
            self._dirty_counters.update(counters)
            return
        for p in progress:  # finished orders leave memory once written
            if p.status == "finished" and p.order_id not in self._dirty_orders:
                for key in [k for k in self._ops if k[0] == p.order_id]:
                    del self._ops[key]
                del self._orders[p.order_id]

    @staticmethod
    def _copy(op: OpenOperation) -> OpenOperation:
        return OpenOperation(op.order_id, op.seq, op.last, op.line_id, op.quantity,
                             op.release_s, op.planned_start_s, op.status, op.good, op.scrap,
                             op.started_s, op.finished_s)

    async def run(self) -> None:
        """Every ``flush_s``: load new orders, write progress; once more when cancelled."""
        try:
            while True:
                await asyncio.sleep(self.flush_s)
                try:
                    await self.refresh()
                except StorageError as exc:
                    log.warning("orders: new orders not loaded: %s", exc)
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

    # -- for tests and the demo -----------------------------------------------------------------
    def operation(self, order_id: int, seq: int) -> OpenOperation | None:
        return self._ops.get((order_id, seq))
