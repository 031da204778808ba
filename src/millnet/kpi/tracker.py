"""The KPI tracker: a :class:`~millnet.ingest.tap.SampleTap` that follows each machine's state
and part counters and keeps per machine and shift instance the ISO 22400-2 time elements and
counts, so that KPIs are answered without reading raw telemetry.

* **States.** The time from one state sample to the next belongs to the earlier sample's state,
  cut at shift and break boundaries: running is APT, setup AUST, fault ADET, a planned stop
  PDOT, anything else (stopped, idle) ADOT; time in a planned break is kept apart (``break_s``)
  and time outside every shift is not counted. A query adds the time from the last state sample
  to now to the current state (not stored).
* **Failures.** Entering a fault state is a failure (FE), counted in the instance it happens in;
  leaving it is a restoration, its whole time to restoration counted where it ends.
* **Counters.** Good and scrap counters are monotonic: the increase since the previous sample
  counts in the instance just before the later sample (breaks included; a sample at a shift's
  start closes the shift before); a decrease is a counter reset, and the new value is what
  was produced since.
* **Order.** Samples are taken in time order per call; a state or counter sample older than the
  last one of its machine is dropped and counted in ``late_samples`` (the past is not
  rewritten).

Only the few KPI series are looked at: a lookup table indexed by series id selects them from a
chunk in a handful of numpy operations; the loop runs over those only. Totals are written every
``flush_interval_s`` by :meth:`run` (and by :meth:`flush` at shutdown), in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from millnet.errors import StorageError
from millnet.kpi.report import KpiRow, report
from millnet.kpi.settings import KpiSection
from millnet.kpi.shifts import NS_PER_S, ShiftCalendar, ShiftInstance
from millnet.kpi.store import KpiStore, MachineCarry, ShiftTotals
from millnet.model import SampleBatch, TextSample
from millnet.registry import Point

log = logging.getLogger(__name__)

_STATE, _GOOD, _SCRAP = 1, 2, 3
# Totals of instances that ended this long before the newest sample leave memory once written.
KEEP_NS = 2 * 86_400 * NS_PER_S
Key = tuple[int, date, str]


@dataclass(frozen=True, slots=True)
class MachineBinding:
    """A machine the tracker follows: its device asset, type and KPI series."""

    asset_id: int
    tenant_id: int
    asset_type: str | None
    state_series: int | None
    good_series: int | None = None
    scrap_series: int | None = None


def bindings_from_points(tenant_id: int, points: Iterable[Point],
                         asset_types: dict[int, str | None],
                         section: KpiSection) -> list[MachineBinding]:
    """The machines among a tenant's devices: those with the state point or a part counter
    (``Registry.list_points`` and ``Registry.asset_types`` give the arguments)."""
    found: dict[int, dict[str, int]] = {}
    wanted = {section.state_point: "state", section.good_point: "good",
              section.scrap_point: "scrap"}
    for p in points:
        if p.name in wanted:
            found.setdefault(p.device_id, {})[wanted[p.name]] = p.series_id
    return [MachineBinding(dev, tenant_id, asset_types.get(dev), s.get("state"), s.get("good"),
                           s.get("scrap")) for dev, s in sorted(found.items())]


class KpiTracker:
    """Per machine and shift instance totals, kept from the ingest stream (event loop only,
    except :meth:`restore`, which blocks)."""

    name = "kpi"

    def __init__(self, section: KpiSection, machines: Iterable[MachineBinding],
                 store: KpiStore | None = None, calendar: ShiftCalendar | None = None) -> None:
        self.section = section
        self.calendar = calendar or ShiftCalendar(section)
        self._store = store
        states = section.states
        self._field = {v: name for name, values in (
            ("apt_s", states.running), ("aust_s", states.setup), ("adet_s", states.fault),
            ("pdot_s", states.planned_stop)) for v in values}
        self._fault = frozenset(states.fault)
        self._carry: dict[int, MachineCarry] = {}
        self._counter_ns: dict[tuple[int, int], int] = {}
        self._totals: dict[Key, ShiftTotals] = {}
        self._dirty: set[Key] = set()
        self._dirty_machines: set[int] = set()
        self._newest_ns = 0
        self.late_samples = 0
        self._role: npt.NDArray[np.int8] = np.zeros(0, np.int8)
        self._asset: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.set_machines(machines)

    # -- machines -------------------------------------------------------------------------------
    def set_machines(self, machines: Iterable[MachineBinding]) -> None:
        """Follow these machines (replaces the previous set; what was kept of them stays)."""
        self._machines = {m.asset_id: m for m in machines}
        roles = [(sid, role, m.asset_id) for m in self._machines.values()
                 for sid, role in ((m.state_series, _STATE), (m.good_series, _GOOD),
                                   (m.scrap_series, _SCRAP)) if sid is not None]
        size = max((sid for sid, _, _ in roles), default=-1) + 1
        self._role = np.zeros(size, np.int8)
        self._asset = np.zeros(size, np.int64)
        for sid, role, asset in roles:
            self._role[sid], self._asset[sid] = role, asset
        for m in self._machines.values():
            self._carry.setdefault(m.asset_id, MachineCarry(m.asset_id, m.tenant_id))

    @property
    def asset_types(self) -> dict[int, str | None]:
        return {m.asset_id: m.asset_type for m in self._machines.values()}

    def restore(self, now_ns: int | None = None) -> None:
        """Load what was stored before a restart (blocking: call it before the tap is added,
        or in a thread)."""
        if self._store is None:
            return
        now_ns = time.time_ns() if now_ns is None else now_ns
        ids = list(self._machines)
        self._carry.update(self._store.machines(ids))
        for t in self._store.open_totals(ids, now_ns - KEEP_NS):
            self._totals[t.key] = t

    # -- the tap --------------------------------------------------------------------------------
    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *,
                   historical: bool, received_ns: int) -> None:
        if not len(batch) or not self._role.size:
            return
        sid = batch.series_id
        at = np.flatnonzero((sid >= 0) & (sid < self._role.size))
        roles = self._role[sid[at]]
        keep = (roles > 0) & (batch.quality[at] <= 1) & ~np.isnan(batch.value[at])
        at = at[keep]
        if not at.size:
            return
        at = at[np.argsort(batch.ts_ns[at], kind="stable")]
        at = _changes_only(at, sid, batch.value)
        chosen = sid[at]
        for role, asset, ts, value in zip(self._role[chosen].tolist(),
                                          self._asset[chosen].tolist(),
                                          batch.ts_ns[at].tolist(), batch.value[at].tolist(),
                                          strict=True):
            carry = self._carry[asset]
            if role == _STATE:
                self._state(carry, ts, value)
            else:
                self._count(carry, role, ts, value)
            self._newest_ns = max(self._newest_ns, ts)

    def _totals_of(self, carry: MachineCarry, inst: ShiftInstance) -> ShiftTotals:
        key = (carry.asset_id, inst.day, inst.shift)
        found = self._totals.get(key)
        if found is None:
            found = self._totals[key] = ShiftTotals(carry.asset_id, carry.tenant_id, inst.shift,
                                                    inst.day, inst.start_ns, inst.end_ns)
        self._dirty.add(key)
        return found

    def _at(self, carry: MachineCarry, ts_ns: int) -> ShiftTotals | None:
        inst = self.calendar.instance_at(ts_ns)
        return None if inst is None else self._totals_of(carry, inst)

    def _credit(self, carry: MachineCarry, state: int, start_ns: int, end_ns: int,
                into: dict[Key, ShiftTotals] | None = None) -> None:
        """Add ``[start_ns, end_ns)`` in ``state`` to the instances it falls in (to ``into``,
        copies for a query, when given)."""
        name = self._field.get(state, "adot_s")
        for seg in self.calendar.split(start_ns, end_ns):
            if into is None:
                t = self._totals_of(carry, seg.instance)
            else:
                key = (carry.asset_id, seg.instance.day, seg.instance.shift)
                t = into.get(key) or ShiftTotals(carry.asset_id, carry.tenant_id,
                                                 seg.instance.shift, seg.instance.day,
                                                 seg.instance.start_ns, seg.instance.end_ns)
                into[key] = t
            field = name if seg.planned else "break_s"
            setattr(t, field, getattr(t, field) + (seg.end_ns - seg.start_ns) / NS_PER_S)

    def _state(self, carry: MachineCarry, ts_ns: int, value: float) -> None:
        if carry.state_ns is not None and ts_ns < carry.state_ns:
            self.late_samples += 1
            return
        new = int(value)
        if carry.state is not None and carry.state_ns is not None:
            self._credit(carry, carry.state, carry.state_ns, ts_ns)
        was_fault = carry.state in self._fault
        if new in self._fault and not was_fault:
            failed = self._at(carry, ts_ns)
            if failed is not None:
                failed.failures += 1
            carry.fault_since_ns = ts_ns
        elif was_fault and new not in self._fault and carry.fault_since_ns is not None:
            restored = self._at(carry, ts_ns) or self._at(carry, carry.fault_since_ns)
            if restored is not None:
                restored.restorations += 1
                restored.ttr_s += (ts_ns - carry.fault_since_ns) / NS_PER_S
            carry.fault_since_ns = None
        carry.state, carry.state_ns = new, ts_ns
        self._dirty_machines.add(carry.asset_id)

    def _count(self, carry: MachineCarry, role: int, ts_ns: int, value: float) -> None:
        key = (carry.asset_id, role)
        if ts_ns < self._counter_ns.get(key, ts_ns):
            self.late_samples += 1
            return
        self._counter_ns[key] = ts_ns
        last = carry.good if role == _GOOD else carry.scrap
        delta = 0.0 if last is None else (value - last if value >= last else value)
        if role == _GOOD:
            carry.good = value
        else:
            carry.scrap = value
        self._dirty_machines.add(carry.asset_id)
        if delta > 0:  # produced before ts_ns: at a shift's start, it counts in the last one
            t = self._at(carry, ts_ns - 1)
            if t is not None:
                if role == _GOOD:
                    t.gq += delta
                else:
                    t.sq += delta

    # -- persistence ----------------------------------------------------------------------------
    def drain(self) -> tuple[list[ShiftTotals], list[MachineCarry]]:
        """Copies of what changed since the last drain; old totals leave memory."""
        totals = [self._totals[k].copy() for k in self._dirty]
        machines = [self._carry[a].copy() for a in self._dirty_machines]
        self._dirty.clear()
        self._dirty_machines.clear()
        horizon = self._newest_ns - KEEP_NS
        for key in [k for k, t in self._totals.items() if t.end_ns < horizon]:
            del self._totals[key]
        return totals, machines

    async def flush(self) -> None:
        """Write what changed (in a thread); on a storage error it is kept for the next try."""
        if self._store is None:
            return
        totals, machines = self.drain()
        if not totals and not machines:
            return
        try:
            await asyncio.to_thread(self._store.save, totals, machines)
        except StorageError as exc:
            log.warning("kpi: totals not written, kept for the next flush: %s", exc)
            for t in totals:
                self._totals.setdefault(t.key, t)
                self._dirty.add(t.key)
            self._dirty_machines.update(m.asset_id for m in machines)

    async def run(self) -> None:
        """Flush every ``flush_interval_s`` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.section.flush_interval_s)
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

    # -- queries --------------------------------------------------------------------------------
    def snapshot(self, asset_ids: Iterable[int], start_ns: int, end_ns: int,
                 now_ns: int) -> dict[Key, ShiftTotals]:
        """Copies of the totals in memory of the instances starting in ``[start_ns, end_ns)``,
        with each machine's current state counted up to ``now_ns``."""
        ids = set(asset_ids)
        out = {k: t.copy() for k, t in self._totals.items()
               if k[0] in ids and start_ns <= t.start_ns < end_ns}
        for asset in ids & self._carry.keys():
            carry = self._carry[asset]
            if carry.state is not None and carry.state_ns is not None and \
                    carry.state_ns < now_ns:
                live: dict[Key, ShiftTotals] = {k: t for k, t in out.items() if k[0] == asset}
                self._credit(carry, carry.state, carry.state_ns, now_ns, into=live)
                out.update({k: t for k, t in live.items() if start_ns <= t.start_ns < end_ns})
        return out

    async def query(self, asset_ids: Sequence[int], start_ns: int, end_ns: int, *,
                    by_shift: bool, now_ns: int | None = None) -> list[KpiRow]:
        """KPIs of the machines ``asset_ids`` together over the shift instances that start in
        ``[start_ns, end_ns)``: stored totals, overlaid by those in memory."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        memory = self.snapshot(asset_ids, start_ns, end_ns, now_ns)
        stored: list[ShiftTotals] = []
        if self._store is not None:
            stored = await asyncio.to_thread(self._store.totals, asset_ids, start_ns, end_ns)
        merged = {t.key: t for t in stored}
        merged.update(memory)
        rows = sorted(merged.values(), key=lambda t: (t.start_ns, t.asset_id))
        return report(rows, self.asset_types, self.section.ideal_cycle_s, by_shift=by_shift)


def _changes_only(at: npt.NDArray[np.intp], sid: npt.NDArray[np.int32],
                  value: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """``at`` (positions in time order) without the samples that repeat their series' previous
    value in the chunk. A repeated state only extends the time in that state, which is credited
    when the state changes (or up to now by a query); a repeated count adds nothing. At 100 Hz a
    machine's state repeats nearly always: this keeps the per-sample Python work to changes."""
    if at.size < 2:
        return at
    by_series = np.argsort(sid[at], kind="stable")  # time order kept within a series
    s, v = sid[at][by_series], value[at][by_series]
    repeat = np.r_[False, (s[1:] == s[:-1]) & (v[1:] == v[:-1])]
    kept: npt.NDArray[np.intp] = at[np.sort(by_series[~repeat])]
    return kept
