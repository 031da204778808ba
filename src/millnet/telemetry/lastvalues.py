"""Current values of all series, in memory, as sorted numpy columns.

A write computes, per batch and fully vectorised, the latest row of every series in the batch
(:func:`latest_per_series`), keeps those that are not older than the current value
(:meth:`LastValueIndex.plan`), persists them in the same transaction as the samples and then
applies them here (:meth:`LastValueIndex.apply`). Planning and applying are split so that memory
only changes after the transaction committed.

Ordering rule: the sample with the greater timestamp wins; at equal timestamps the one written
later wins. A stale mark keeps the value, sets quality ``STALE`` and moves the timestamp to
``max(current, stale time)``, so it always takes effect and live data newer than the value it
invalidated still wins afterwards.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from millnet.model import Quality
from millnet.telemetry.base import LastValue

_QUALITY = {int(q): q for q in Quality}

LAST_SCHEMA = pa.schema([
    ("series_id", pa.int32()), ("ts", pa.timestamp("us")), ("value", pa.float64()),
    ("text", pa.string()), ("quality", pa.uint8()),
])


@dataclass(frozen=True, slots=True)
class LastRows:
    """Columnar last values, one row per series, sorted by series id.

    ``value`` is NaN and ``text`` a str for text series; ``text`` is None for numeric series.
    """

    ids: npt.NDArray[np.int64]
    ts_us: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    text: npt.NDArray[np.object_]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, idx: npt.NDArray[Any]) -> LastRows:
        return LastRows(self.ids[idx], self.ts_us[idx], self.value[idx], self.text[idx],
                        self.quality[idx])

    @staticmethod
    def empty() -> LastRows:
        return LastRows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64),
                        np.empty(0, object), np.empty(0, np.uint8))

    @staticmethod
    def concat(parts: list[LastRows]) -> LastRows:
        return LastRows(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("ids", "ts_us", "value", "text", "quality")))

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(self.ids.astype(np.int32)), pa.array(self.ts_us.view("datetime64[us]")),
             pa.array(self.value), pa.array(self.text.tolist(), pa.string()),
             pa.array(self.quality)],
            schema=LAST_SCHEMA,
        )

    @staticmethod
    def from_arrow(table: pa.Table) -> LastRows:
        text = np.empty(table.num_rows, object)
        text[:] = table.column("text").to_pylist()
        # Copies: Arrow hands out read-only buffers, and apply() updates in place.
        return LastRows(
            np.array(table.column("series_id").to_numpy(), np.int64),
            np.array(table.column("ts").cast(pa.int64()).to_numpy(), np.int64),
            np.array(table.column("value").to_numpy(), np.float64),
            text,
            np.array(table.column("quality").to_numpy(), np.uint8),
        )


def latest_per_series(ids: npt.NDArray[Any], ts_us: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Index of each series' latest row (greatest ts, then last position), ordered by id."""
    if ids.shape[0] == 0:
        return np.empty(0, np.intp)
    order = np.argsort(ids, kind="stable")
    s_ids, s_ts = ids[order], ts_us[order]
    starts = np.flatnonzero(np.r_[True, s_ids[1:] != s_ids[:-1]])
    counts = np.diff(np.r_[starts, s_ids.shape[0]])
    max_ts = np.maximum.reduceat(s_ts, starts)
    at_max = np.where(s_ts == np.repeat(max_ts, counts), np.arange(s_ids.shape[0]), -1)
    return order[np.maximum.reduceat(at_max, starts)]


def candidates(ids: npt.NDArray[Any], ts_us: npt.NDArray[np.int64],
               value: npt.NDArray[np.float64] | None, text: list[str] | None,
               quality: npt.NDArray[np.uint8]) -> LastRows:
    """The latest row per series of a batch (numeric when ``value`` is given, else text)."""
    idx = latest_per_series(ids, ts_us)
    n = idx.shape[0]
    if value is not None:
        vals, texts = value[idx], np.full(n, None, object)
    else:
        assert text is not None
        vals = np.full(n, np.nan)
        texts = np.empty(n, object)
        texts[:] = [text[i] for i in idx.tolist()]
    return LastRows(ids[idx].astype(np.int64), ts_us[idx], vals, texts, quality[idx])


class LastValueIndex:
    """Thread-safe: one writer plans and applies, readers call :meth:`get` concurrently."""

    def __init__(self, rows: LastRows) -> None:
        self._rows = rows
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def _find(self, rows: LastRows, ids: npt.NDArray[np.int64]) -> tuple[
            npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        pos = np.searchsorted(rows.ids, ids)
        clipped = np.minimum(pos, max(len(rows) - 1, 0))
        found = (pos < len(rows)) & (rows.ids[clipped] == ids) if len(rows) else (
            np.zeros(ids.shape[0], bool))
        return clipped, found

    def plan(self, cand: LastRows) -> LastRows:
        """The candidate rows (unique ids) that are not older than the current values."""
        with self._lock:
            pos, found = self._find(self._rows, cand.ids)
            current_ts = self._rows.ts_us[pos] if len(self._rows) else cand.ts_us
        return cand.take(~found | (cand.ts_us >= current_ts))

    def plan_stale(self, ids: npt.NDArray[np.int64], ts_us: int) -> LastRows:
        """Rows marking ``ids`` stale at ``ts_us``, keeping their values."""
        n = ids.shape[0]
        with self._lock:
            pos, found = self._find(self._rows, ids)
            cur = self._rows.take(pos) if len(self._rows) else LastRows(
                ids, np.zeros(n, np.int64), np.zeros(n), np.full(n, None, object),
                np.zeros(n, np.uint8))
        value = np.where(found, cur.value, np.nan)
        text = cur.text.copy()
        text[~found] = None
        ts = np.where(found, np.maximum(cur.ts_us, ts_us), ts_us)
        return LastRows(ids, ts, value, text, np.full(n, Quality.STALE, np.uint8))

    def apply(self, changes: LastRows) -> None:
        """Install planned rows (call only after they were committed)."""
        if not len(changes):
            return
        with self._lock:
            rows = self._rows
            pos, found = self._find(rows, changes.ids)
            hit = pos[found]
            rows.ts_us[hit] = changes.ts_us[found]
            rows.value[hit] = changes.value[found]
            rows.text[hit] = changes.text[found]
            rows.quality[hit] = changes.quality[found]
            if not found.all():
                merged = LastRows.concat([rows, changes.take(~found)])
                self._rows = merged.take(np.argsort(merged.ids, kind="stable"))

    def get(self, ids: npt.NDArray[np.int64]) -> dict[int, LastValue]:
        """Current values of ``ids`` (sorted, unique); unknown ids are left out."""
        with self._lock:
            pos, found = self._find(self._rows, ids)
            sel = self._rows.take(pos[found])
        values = sel.value.tolist()
        return {
            sid: LastValue(ts * 1000, None if text is not None or math.isnan(val) else val, text,
                           _QUALITY[q])
            for sid, ts, val, text, q in zip(
                sel.ids.tolist(), sel.ts_us.tolist(), values, sel.text.tolist(),
                sel.quality.tolist(), strict=True)
        }

    def snapshot(self) -> LastRows:
        with self._lock:
            return self._rows.take(np.arange(len(self._rows)))
