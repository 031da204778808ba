"""Validation of incoming samples and their conversion to Arrow tables for insertion.

Everything here runs before a store opens a transaction, so a bad batch is refused with
:class:`~millnet.errors.InvalidInput` having written nothing. Numeric columns are checked with
whole-array numpy operations; only the (low-volume) text samples are checked one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from millnet.errors import InvalidInput
from millnet.model import Quality, SampleBatch, TextSample

NS_PER_US = 1_000
US_PER_DAY = 86_400_000_000
INT32_MAX = 2**31 - 1
MAX_QUALITY = max(Quality)

US_PER_MS = 1_000
# The samples table keeps a timestamp as milliseconds plus the microseconds within the
# millisecond (see :mod:`millnet.telemetry.duckdb_store`).
NUMERIC_SCHEMA = pa.schema([
    ("series_id", pa.int32()), ("ts_ms", pa.int64()), ("ts_us", pa.uint16()),
    ("value", pa.float64()), ("quality", pa.uint8()),
])
TEXT_SCHEMA = pa.schema([
    ("series_id", pa.int32()), ("ts", pa.timestamp("us")), ("value", pa.string()),
    ("quality", pa.uint8()),
])


@dataclass(frozen=True, slots=True)
class NumericRows:
    """A validated numeric batch with timestamps floored to microseconds."""

    series_id: npt.NDArray[np.int32]
    ts_us: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.series_id.shape[0])

    def to_arrow(self) -> pa.Table:
        """Arrow table in the samples table's layout (timestamps split into ms and us)."""
        ms, us = np.divmod(self.ts_us, US_PER_MS)  # floor: us in [0, 1000) for any sign
        return pa.Table.from_arrays(
            [pa.array(self.series_id), pa.array(ms), pa.array(us.astype(np.uint16)),
             pa.array(self.value), pa.array(self.quality)],
            schema=NUMERIC_SCHEMA,
        )


@dataclass(frozen=True, slots=True)
class TextRows:
    """Validated text samples, columnar."""

    series_id: npt.NDArray[np.int32]
    ts_us: npt.NDArray[np.int64]
    value: list[str]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.series_id.shape[0])

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(self.series_id), pa.array(self.ts_us.view("datetime64[us]")),
             pa.array(self.value, pa.string()), pa.array(self.quality)],
            schema=TEXT_SCHEMA,
        )


def _column(batch: SampleBatch, name: str, length: int) -> npt.NDArray[Any]:
    arr = getattr(batch, name)
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise InvalidInput("must be a one-dimensional numpy array", field=name)
    if arr.shape[0] != length:
        raise InvalidInput(f"has {arr.shape[0]} elements, series_id has {length}", field=name)
    return arr


def _as_int(arr: npt.NDArray[Any], name: str, dtype: type[np.integer[Any]],
            low: int, high: int) -> npt.NDArray[Any]:
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"must be integers, got dtype {arr.dtype}", field=name)
    if arr.size and (int(arr.min()) < low or int(arr.max()) > high):
        raise InvalidInput(f"values must lie in [{low}, {high}]", field=name)
    return np.ascontiguousarray(arr, dtype=dtype)


def validate_batch(batch: SampleBatch) -> NumericRows:
    """Check a batch and return it with microsecond timestamps; raises InvalidInput."""
    if not isinstance(batch, SampleBatch):
        raise InvalidInput(f"expected a SampleBatch, got {type(batch).__name__}", field="batch")
    sid = batch.series_id
    if not isinstance(sid, np.ndarray) or sid.ndim != 1:
        raise InvalidInput("must be a one-dimensional numpy array", field="series_id")
    n = int(sid.shape[0])
    ts = _column(batch, "ts_ns", n)
    value = _column(batch, "value", n)
    quality = _column(batch, "quality", n)
    if ts.dtype.kind not in "iu":
        # Float timestamps (and so NaN timestamps) are refused, not rounded.
        raise InvalidInput(f"must be integer nanoseconds, got dtype {ts.dtype}", field="ts_ns")
    if value.dtype.kind not in "fiub":
        raise InvalidInput(f"must be numeric, got dtype {value.dtype}", field="value")
    ts_ns = _as_int(ts, "ts_ns", np.int64, -(2**63), 2**63 - 1)
    return NumericRows(
        series_id=_as_int(sid, "series_id", np.int32, 0, INT32_MAX),
        ts_us=ts_ns // NS_PER_US,
        value=np.ascontiguousarray(value, dtype=np.float64),
        quality=_as_int(quality, "quality", np.uint8, 0, int(MAX_QUALITY)),
    )


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def validate_text(samples: Sequence[TextSample]) -> TextRows:
    """Check text samples; raises InvalidInput naming the first bad one."""
    n = len(samples)
    sid = np.empty(n, np.int32)
    ts = np.empty(n, np.int64)
    quality = np.empty(n, np.uint8)
    values: list[str] = []
    for i, s in enumerate(samples):
        if not isinstance(s, TextSample):
            raise InvalidInput(f"expected TextSample, got {type(s).__name__}", field=f"text[{i}]")
        if not _is_int(s.series_id) or not 0 <= s.series_id <= INT32_MAX:
            raise InvalidInput("series_id must be an int in [0, 2**31)", field=f"text[{i}]")
        if not _is_int(s.ts_ns) or not -(2**63) <= s.ts_ns < 2**63:
            raise InvalidInput("ts_ns must be int nanoseconds", field=f"text[{i}]")
        if not isinstance(s.value, str):
            raise InvalidInput("value must be a str", field=f"text[{i}]")
        if not _is_int(s.quality) or not 0 <= s.quality <= MAX_QUALITY:
            raise InvalidInput("quality must be a Quality", field=f"text[{i}]")
        sid[i], ts[i], quality[i] = s.series_id, s.ts_ns // NS_PER_US, s.quality
        values.append(s.value)
    return TextRows(sid, ts, values, quality)


def validate_ids(series_ids: Iterable[int], field: str = "series_ids") -> npt.NDArray[np.int32]:
    """Unique, sorted series ids as int32; raises InvalidInput for non-ints or out of range."""
    ids = list(series_ids)
    if not all(_is_int(i) for i in ids):
        raise InvalidInput("series ids must be ints", field=field)
    if ids and (min(ids) < 0 or max(ids) > INT32_MAX):
        raise InvalidInput("series ids must lie in [0, 2**31)", field=field)
    return np.unique(np.asarray(ids, dtype=np.int64)).astype(np.int32)


def validate_ts(ts_ns: int, field: str) -> int:
    """A timestamp argument as int nanoseconds (InvalidInput otherwise)."""
    if not _is_int(ts_ns) or not -(2**63) <= ts_ns < 2**63:
        raise InvalidInput("must be int nanoseconds since the epoch", field=field)
    return int(ts_ns)


def floor_day_us(ts_us: int) -> int:
    """Start of the UTC day containing ``ts_us``."""
    return ts_us - ts_us % US_PER_DAY
