"""Rules on one point, evaluated on every sample: thresholds, rates of change, states.

Each set holds its bindings grouped by series, so a chunk of samples is matched to the bindings
of its series with a few numpy operations (:func:`~millnet.rules.table.expand`). The conditions
of all pairs are computed at once; only bindings whose state may change (the condition crossed,
or a delay is pending) are stepped one sample at a time, in arrival order. In steady state no
Python code runs per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from millnet.model import Quality
from millnet.rules.table import BindingTable, expand

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Chunk:
    """Live numeric samples, quality already checked (GOOD or UNCERTAIN only)."""

    series: I64
    ts_ns: I64
    value: F64

    @staticmethod
    def usable(series: npt.NDArray[np.int32], ts_ns: I64, value: F64,
               quality: npt.NDArray[np.uint8]) -> Chunk:
        ok = (quality <= Quality.UNCERTAIN) & ~np.isnan(value)
        return Chunk(series[ok].astype(np.int64), ts_ns[ok], value[ok])


class _SeriesSet:
    """Bindings of one kind keyed by series; subclasses say when a value is in alarm."""

    def __init__(self, table: BindingTable, gidx: list[int], series: list[int],
                 size: int) -> None:
        self.table = table
        keys = np.asarray(series, dtype=np.int64)
        self.order = np.argsort(keys, kind="stable")
        self.gidx = np.asarray(gidx, dtype=np.int64)[self.order]
        self.count = np.bincount(keys, minlength=size).astype(np.int64)
        self.start = np.cumsum(self.count) - self.count
        self.watched = self.count > 0

    def _sorted(self, values: list[float]) -> F64:
        return np.asarray(values, dtype=np.float64)[self.order]

    def conditions(self, slot: I64, value: F64) -> tuple[Bools, Bools]:
        raise NotImplementedError

    def process(self, chunk: Chunk) -> int:
        """Evaluate ``chunk``; returns how many (sample, binding) pairs were evaluated."""
        if not len(self.gidx) or not len(chunk.series):
            return 0
        size = len(self.count)
        inside = chunk.series < size
        keys = np.where(inside, chunk.series, 0)
        mine = np.nonzero(inside & self.watched[keys])[0]
        if not len(mine):
            return 0
        pos, slot = expand(keys[mine], self.start, self.count)
        pos = mine[pos]
        value = chunk.value[pos]
        raw, clear = self.conditions(slot, value)
        g = self.gidx[slot]
        t = self.table
        t.evals += np.bincount(g, minlength=len(t))
        active = t.active[g]
        hot = (~active & raw) | (active & clear) | (t.pending[g] != 0)
        if hot.any():
            stepping = np.isin(g, np.unique(g[hot]))
            ts = chunk.ts_ns[pos]
            for k in np.nonzero(stepping)[0].tolist():
                t.step(int(g[k]), int(ts[k]), bool(raw[k]), bool(clear[k]), float(value[k]))
        return len(g)


class ThresholdSet(_SeriesSet):
    """Above and/or below a limit; back to normal only past the deadband."""

    def __init__(self, table: BindingTable, gidx: list[int], series: list[int], size: int,
                 above: list[float | None], below: list[float | None],
                 deadband: list[float]) -> None:
        super().__init__(table, gidx, series, size)
        nan = float("nan")
        self.above = self._sorted([nan if a is None else a for a in above])
        self.below = self._sorted([nan if b is None else b for b in below])
        band = self._sorted(deadband)
        self.clear_above = self.above - band
        self.clear_below = self.below + band

    def conditions(self, slot: I64, value: F64) -> tuple[Bools, Bools]:
        above, below = self.above[slot], self.below[slot]
        raw = (value > above) | (value < below)  # comparisons with NaN (no limit) are False
        clear = ~((value > self.clear_above[slot]) | (value < self.clear_below[slot]))
        return raw, clear


class StateSet(_SeriesSet):
    """In one of a list of values (a machine state, a boolean alarm bit)."""

    def __init__(self, table: BindingTable, gidx: list[int], series: list[int], size: int,
                 values: list[tuple[float, ...]]) -> None:
        super().__init__(table, gidx, series, size)
        width = max((len(v) for v in values), default=1) or 1
        matrix = np.full((len(values), width), np.nan)
        for i, vals in enumerate(values):
            matrix[i, :len(vals)] = vals
        self.values = matrix[self.order]

    def conditions(self, slot: I64, value: F64) -> tuple[Bools, Bools]:
        raw = (self.values[slot] == value[:, None]).any(axis=1)
        return raw, ~raw


class RateSet(ThresholdSet):
    """Rate of change between consecutive samples of a series, in units per second: a
    threshold on the derived rate (rise above ``max_rise``, fall faster than ``max_fall``)."""

    def __init__(self, table: BindingTable, gidx: list[int], series: list[int], size: int,
                 max_rise: list[float | None], max_fall: list[float | None]) -> None:
        below = [None if f is None else -f for f in max_fall]
        super().__init__(table, gidx, series, size, max_rise, below, [0.0] * len(gidx))
        self.prev_ts = np.zeros(size, dtype=np.int64)
        self.prev_value = np.zeros(size, dtype=np.float64)

    def process(self, chunk: Chunk) -> int:
        if not len(self.gidx) or not len(chunk.series):
            return 0
        size = len(self.count)
        keys = np.where(chunk.series < size, chunk.series, 0)
        mine = np.nonzero((chunk.series < size) & self.watched[keys])[0]
        if not len(mine):
            return 0
        order = mine[np.argsort(chunk.series[mine], kind="stable")]
        s, t, v = chunk.series[order], chunk.ts_ns[order], chunk.value[order]
        first = np.r_[True, s[1:] != s[:-1]]
        last = np.r_[s[1:] != s[:-1], True]
        prev_t = np.r_[0, t[:-1]]
        prev_v = np.r_[0.0, v[:-1]]
        prev_t[first] = self.prev_ts[s[first]]
        prev_v[first] = self.prev_value[s[first]]
        self.prev_ts[s[last]] = t[last]
        self.prev_value[s[last]] = v[last]
        dt = (t - prev_t) / 1e9
        valid = (prev_t > 0) & (dt > 0)
        rate = np.where(valid, (v - prev_v) / np.where(valid, dt, 1.0), np.nan)
        back = np.argsort(order, kind="stable")  # arrival order again
        keep = valid[back]
        derived = Chunk(s[back][keep], t[back][keep], rate[back][keep])
        return super().process(derived)


class TextStateSet:
    """State conditions on string points (few samples: plain Python)."""

    def __init__(self, table: BindingTable) -> None:
        self.table = table
        self.by_series: dict[int, list[tuple[int, frozenset[str]]]] = {}

    def add(self, gidx: int, series: int, texts: tuple[str, ...]) -> None:
        self.by_series.setdefault(series, []).append((gidx, frozenset(texts)))

    def process(self, series: int, ts_ns: int, text: str) -> None:
        for gidx, texts in self.by_series.get(series, ()):
            raw = text in texts
            self.table.evals[gidx] += 1
            self.table.step(gidx, ts_ns, raw, not raw, float("nan"))
