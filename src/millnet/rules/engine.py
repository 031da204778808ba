"""The rule engine: rules evaluated on the ingest stream as it arrives (a stream tap).

Every chunk of live samples (every ``tick_ms``, see :mod:`millnet.ingest.tap`) goes through
the single-point rules sample by sample; the rules on latest values (expressions, suppression,
anomaly detectors) are scanned every ``scan_ms`` over the devices whose inputs changed (each
such rule costs a vectorised evaluation whatever the number of samples, so they run at a scan
rate, as a PLC evaluates its alarm logic, not per chunk); a timer completes on/off delays and
finds stale points when nothing arrives. Condition changes go to the alarm service in one call
per chunk.

Faults stay with their rule: an expression that divides by zero or misses a point is counted
and reported on that rule (``status``), a detector that raises likewise; neither stops ingest nor
the other rules. Store-and-forward (historical) samples are not evaluated: an alarm is about now.

Re-binding (a rule changed, or a series the engine does not know appeared: a new device or
point) reads the registry and the rules in a worker thread and swaps the evaluators in at once;
condition states and trained detectors carry over by (rule, device).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from millnet.analytics.anomaly.base import Detector
from millnet.model import ConditionChange, Quality, SampleBatch, TextSample
from millnet.registry import Registry
from millnet.rules.bindings import Compiled, PointRef, compile_rules
from millnet.rules.pointsets import Chunk
from millnet.rules.runtime import RuleStatus
from millnet.rules.settings import RulesSection
from millnet.rules.store import RuleStore
from millnet.rules.table import BindingTable, DeviceRef, RuleRef
from millnet.rules.tickers import LastValues

log = logging.getLogger("millnet.rules")

Submit = Callable[[list[ConditionChange]], None]
States = dict[tuple[int, int], tuple[bool, int, bool]]

TIMER_S = 0.1  # delays and stale points are checked this often when no samples come
REBIND_MIN_S = 1.0  # unknown series start a re-bind at most this often


class RuleEngine:
    """A :class:`~millnet.ingest.tap.SampleTap` and :class:`~millnet.rules.runtime.RuleRuntime`."""

    name = "rules"

    def __init__(self, rules: RuleStore, registry: Registry, submit: Submit,
                 settings: RulesSection, *, initial: Callable[[], States] | None = None) -> None:
        self._rules = rules
        self._registry = registry
        self._submit = submit
        self._settings = settings
        self._initial = initial
        self._compiled: Compiled | None = None
        self._last: LastValues | None = None
        self._rebind = asyncio.Event()
        self._last_rebind = 0.0
        self._scan_ns = settings.scan_ms * 1_000_000
        self.rebinds = 0
        #: Called on the loop after each re-bind (devices or points may have changed).
        self.rebound: list[Callable[[], None]] = []

    # -- building ----------------------------------------------------------------------------
    def _load(self, states: States) -> Compiled:
        """Read rules and registry and compile (blocking: runs in a worker thread)."""
        refs = [RuleRef(s.id, s.tenant_id, s.rule) for s in self._rules.list(None)]
        devices = [DeviceRef(a.id, a.tenant_id, a.name, a.path, a.asset_type)
                   for a in self._registry.list_devices(None)]
        points: dict[int, dict[str, PointRef]] = {}
        for tenant in {d.tenant_id for d in devices}:
            for p in self._registry.list_points(tenant):
                points.setdefault(p.device_id, {})[p.name] = PointRef(p.series_id, p.datatype)
        detectors = self._trained_detectors(refs)
        compiled = compile_rules(refs, devices, points, max_bindings=self._settings.max_bindings,
                                 detectors=detectors)
        compiled.table.restore(states)
        return compiled

    def _trained_detectors(self, refs: list[RuleRef]) -> dict[tuple[int, int], Detector]:
        """The detectors of anomaly rules that did not change, by (rule id, asset id)."""
        old = self._compiled
        if old is None:
            return {}
        now = {r.rule_id: r.rule for r in refs}
        return {(rule_id, asset): det for rule_id, s in old.anomalies.items()
                if now.get(rule_id) == old.rules[rule_id].rule
                for asset, det in s.detectors.items()}

    async def start(self) -> None:
        """Bind the rules (the alarm store's active conditions become the starting states)."""
        states = await asyncio.to_thread(self._initial) if self._initial else {}
        self._install(await asyncio.to_thread(self._load, states))

    def _install(self, compiled: Compiled) -> None:
        now = time.time_ns()
        last = LastValues(compiled.size, compiled.device_slot, compiled.devices, now)
        old = self._last
        if old is not None:  # what the stream said so far still holds
            n = min(old.size, last.size)
            last.value[:n], last.ts[:n] = old.value[:n], old.ts[:n]
            last.seen[:n], last.updated[:n] = old.seen[:n], old.updated[:n]
        for i, s in enumerate(compiled.scanned):  # phases spread over one scan interval
            s.scanned_ns = now - self._scan_ns + (i * self._scan_ns) // len(compiled.scanned)
        self._compiled, self._last = compiled, last
        self.rebinds += 1
        for hook in self.rebound:
            hook()
        log.info("rules bound: %d bindings of %d rules", len(compiled.table),
                 len(compiled.rules))

    def changed(self, tenant_id: int) -> None:
        """Rules of ``tenant_id`` changed (the API calls this): re-bind soon."""
        self._rebind.set()

    # -- the stream --------------------------------------------------------------------------
    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *, historical: bool,
                   received_ns: int) -> None:
        c, last = self._compiled, self._last
        if historical or c is None or last is None:
            return
        t = c.table
        t.received_ns = received_ns
        series = batch.series_id.astype(np.int64)
        if len(series) and int(series.max()) >= c.size:
            self._unknown_series()
        usable = batch.quality <= Quality.UNCERTAIN
        last.update(series, batch.ts_ns, batch.value, usable, received_ns)
        chunk = Chunk(series[usable & ~np.isnan(batch.value)],
                      batch.ts_ns[usable & ~np.isnan(batch.value)],
                      batch.value[usable & ~np.isnan(batch.value)])
        c.thresholds.process(chunk)
        c.states.process(chunk)
        c.rates.process(chunk)
        for sample in text:
            if sample.quality <= Quality.UNCERTAIN:
                c.texts.process(sample.series_id, sample.ts_ns, sample.value)
            if sample.series_id >= c.size:
                self._unknown_series()
        # The chunk's entry time stands for now: at most a tap interval earlier.
        self._scan(c, last, received_ns)
        c.stale.process(last, received_ns)
        self._flush(t)

    def _scan(self, c: Compiled, last: LastValues, now_ns: int) -> None:
        """The rules on latest values whose scan is due, over the devices whose inputs changed
        since their last scan. Their phases are spread over the scan interval at install, so
        each chunk scans a share of them, not all of them every ``scan_ms``."""
        for s in c.scanned:
            if now_ns - s.scanned_ns >= self._scan_ns:
                s.process(last, now_ns)

    def _flush(self, table: BindingTable) -> None:
        changes = table.take_changes()
        if changes:  # evaluators run one after another: hand changes over in time order
            changes.sort(key=lambda c: c.ts_ns)
            self._submit(changes)

    def _unknown_series(self) -> None:
        if time.monotonic() - self._last_rebind >= REBIND_MIN_S:
            self._rebind.set()

    # -- timers ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Complete delays, find stale points and re-bind, until cancelled."""
        if self._compiled is None:
            await self.start()
        rebinder = asyncio.create_task(self._rebinder())
        try:
            while True:
                await asyncio.sleep(TIMER_S)
                self.tick(time.time_ns())
        finally:
            rebinder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rebinder

    def tick(self, now_ns: int) -> None:
        c, last = self._compiled, self._last
        if c is None or last is None:
            return
        c.table.received_ns = now_ns
        self._scan(c, last, now_ns)
        c.table.expire_pending(now_ns)
        c.stale.process(last, now_ns)
        self._flush(c.table)

    async def _rebinder(self) -> None:
        while True:
            await self._rebind.wait()
            self._rebind.clear()
            self._last_rebind = time.monotonic()
            try:
                states = self._compiled.table.states() if self._compiled else {}
                compiled = await asyncio.to_thread(self._load, states)
            except Exception:
                log.exception("re-binding the rules failed; the previous bindings stay")
                await asyncio.sleep(REBIND_MIN_S)
                continue
            # States may have moved while the thread ran: take the latest ones over.
            if self._compiled is not None:
                compiled.table.restore(self._compiled.table.states())
            self._install(compiled)
            await asyncio.sleep(REBIND_MIN_S)

    # -- reporting ---------------------------------------------------------------------------
    def status(self, rule_id: int) -> RuleStatus | None:
        c = self._compiled
        if c is None or rule_id not in c.counters:
            return None
        k = c.counters[rule_id]
        t = c.table
        mine = [i for i, b in enumerate(t.bindings) if b.ref.rule_id == rule_id]
        detail: dict[str, object] = {}
        if k.unbound:
            detail["unbound"] = list(k.unbound)
        anomaly = c.anomalies.get(rule_id)
        if anomaly is not None:
            detail["detectors"] = {str(a): d.describe() for a, d in anomaly.detectors.items()}
        return RuleStatus(
            rule_id=rule_id, bindings=len(mine), active=int(t.active[mine].sum()) if mine else 0,
            evaluations=k.evaluations + int(t.evals[mine].sum()), errors=k.errors,
            last_error=k.last_error, last_error_at_ns=k.last_error_at_ns, detail=detail)

    @property
    def bindings(self) -> int:
        return 0 if self._compiled is None else len(self._compiled.table)
