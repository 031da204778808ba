"""Every (rule, device) pair the engine evaluates, and the alarm condition of each.

A binding is one rule applied to one device. Its condition state lives in flat numpy arrays
indexed by binding number (``active``, ``pending``, ``suppressed``...), so the evaluators can
look at thousands of bindings per sample chunk at once. Only a binding whose condition may
change goes through :meth:`BindingTable.step`, the one place where on and off delays are applied
and :class:`~millnet.model.ConditionChange` records are made.

Delays: a condition that becomes true is *pending* from the time of the sample that made it true;
it becomes active when a later sample still finds it true ``on_delay`` after that, or when the
engine's timer finds the delay elapsed without a contrary sample (a device that reports by
exception sends nothing while its value stays high). Returning to normal uses ``off_delay`` the
same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from millnet.model import ConditionChange, Priority
from millnet.rules.definitions import Rule, render_message


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as the engine runs it: its stored id and tenant, and the parsed rule."""

    rule_id: int
    tenant_id: int
    rule: Rule

    @property
    def priority(self) -> Priority:
        return self.rule.priority


@dataclass(frozen=True, slots=True)
class DeviceRef:
    asset_id: int
    tenant_id: int
    name: str
    path: str
    asset_type: str | None


@dataclass(frozen=True, slots=True)
class Binding:
    ref: RuleRef
    device: DeviceRef
    point: str  # the point the message names ("" when several)
    limit: float | None = None  # the limit the message names


@dataclass
class RuleCounters:
    """What the engine reports on one rule (GET /api/v1/rules/{id})."""

    bindings: int = 0
    evaluations: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at_ns: int | None = None
    unbound: list[str] = field(default_factory=list)  # devices that lack a point the rule needs

    def error(self, reason: str, now_ns: int, count: int = 1) -> None:
        self.errors += count
        self.last_error = reason
        self.last_error_at_ns = now_ns


class BindingTable:
    """Condition state of every binding, and the delayed-transition logic."""

    def __init__(self, bindings: list[Binding], on_delay_s: list[float],
                 off_delay_s: list[float]) -> None:
        n = len(bindings)
        self.bindings = bindings
        self.active = np.zeros(n, dtype=np.bool_)
        self.suppressed = np.zeros(n, dtype=np.bool_)
        self.pending = np.zeros(n, dtype=np.int64)  # since when the state wants to flip (0: not)
        self.pending_value = np.full(n, np.nan)
        self.on_delay = np.array([round(s * 1e9) for s in on_delay_s], dtype=np.int64)
        self.off_delay = np.array([round(s * 1e9) for s in off_delay_s], dtype=np.int64)
        self.evals = np.zeros(n, dtype=np.int64)  # samples evaluated, per binding
        self.changes: list[ConditionChange] = []
        self.received_ns = 0

    def __len__(self) -> int:
        return len(self.bindings)

    def key(self, i: int) -> tuple[int, int]:
        b = self.bindings[i]
        return (b.ref.rule_id, b.device.asset_id)

    def restore(self, states: dict[tuple[int, int], tuple[bool, int, bool]]) -> None:
        """Take over (active, pending, suppressed) by (rule id, asset id) from an earlier
        table (a re-bind) or from the alarm store (a restart)."""
        for i in range(len(self.bindings)):
            state = states.get(self.key(i))
            if state is not None:
                self.active[i], self.pending[i], self.suppressed[i] = state

    def states(self) -> dict[tuple[int, int], tuple[bool, int, bool]]:
        return {self.key(i): (bool(self.active[i]), int(self.pending[i]),
                              bool(self.suppressed[i]))
                for i in range(len(self.bindings))
                if self.active[i] or self.pending[i] or self.suppressed[i]}

    def step(self, i: int, ts_ns: int, raw: bool, clear: bool, value: float) -> None:
        """Binding ``i`` saw a sample at ``ts_ns``: ``raw`` says its condition holds, ``clear``
        that it has returned to normal (outside the deadband); both False: no change."""
        if not self.active[i]:
            if not raw:
                self.pending[i] = 0
                return
            delay = int(self.on_delay[i])
            if delay == 0:
                self._flip(i, ts_ns, True, value)
                return
            if self.pending[i] == 0:
                self.pending[i] = ts_ns
                self.pending_value[i] = value
            if ts_ns - self.pending[i] >= delay:
                self._flip(i, ts_ns, True, value)
            return
        if not clear:
            self.pending[i] = 0
            return
        delay = int(self.off_delay[i])
        if delay == 0:
            self._flip(i, ts_ns, False, value)
            return
        if self.pending[i] == 0:
            self.pending[i] = ts_ns
            self.pending_value[i] = value
        if ts_ns - self.pending[i] >= delay:
            self._flip(i, ts_ns, False, value)

    def expire_pending(self, now_ns: int) -> None:
        """Complete the delays that have run out without a sample to say so."""
        waiting = np.nonzero(self.pending)[0]
        if not len(waiting):
            return
        delay = np.where(self.active[waiting], self.off_delay[waiting], self.on_delay[waiting])
        due = waiting[self.pending[waiting] + delay <= now_ns]
        for i in due.tolist():
            ts = int(self.pending[i]) + (int(self.off_delay[i]) if self.active[i]
                                         else int(self.on_delay[i]))
            self._flip(i, ts, not bool(self.active[i]), float(self.pending_value[i]))

    def set_suppressed(self, i: int, suppressed: bool, ts_ns: int) -> None:
        """The rule's suppression-by-design condition changed for binding ``i``."""
        if bool(self.suppressed[i]) == suppressed:
            return
        self.suppressed[i] = suppressed
        self._emit(i, ts_ns, bool(self.active[i]), float(self.pending_value[i]))

    def _flip(self, i: int, ts_ns: int, active: bool, value: float) -> None:
        self.active[i] = active
        self.pending[i] = 0
        self.pending_value[i] = value
        self._emit(i, ts_ns, active, value)

    def _emit(self, i: int, ts_ns: int, active: bool, value: float) -> None:
        b = self.bindings[i]
        rule = b.ref.rule
        shown = None if math.isnan(value) else value  # NaN: no value to show
        message = render_message(
            rule.message, device=b.device.name, point=b.point, value=shown, limit=b.limit,
            rule=rule.name, asset_path=b.device.path)
        self.changes.append(ConditionChange(
            rule_id=b.ref.rule_id, rule_name=rule.name, tenant_id=b.ref.tenant_id,
            asset_id=b.device.asset_id, active=active, ts_ns=ts_ns, priority=rule.priority,
            message=message, value=shown, received_ns=self.received_ns,
            suppressed=bool(self.suppressed[i]), notify=rule.notify))

    def take_changes(self) -> list[ConditionChange]:
        out, self.changes = self.changes, []
        return out


def csr(keys: npt.NDArray[np.int64], size: int,
        ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Group positions by key: (order, start, count) with ``order[start[k]:start[k]+count[k]]``
    the positions whose key is ``k`` (keys in ``0..size-1``)."""
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=size).astype(np.int64)
    start = np.cumsum(count) - count
    return order.astype(np.int64), start, count


def expand(keys: npt.NDArray[np.int64], start: npt.NDArray[np.int64],
           count: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each position ``p`` of ``keys``, every slot ``start[keys[p]] + j, j < count``: the
    pairs (position, slot), positions in order."""
    c = count[keys]
    pos = np.repeat(np.arange(len(keys), dtype=np.int64), c)
    firsts = np.repeat(start[keys], c)
    offsets = np.arange(int(c.sum()), dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
    return pos, firsts + offsets
