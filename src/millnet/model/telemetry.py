"""Telemetry samples, columnar.

A sample is ``(series_id, ts_ns, value, quality)``. Samples travel in columnar batches: the
ingest path appends into typed ``array.array`` buffers (cheap per sample, no Python objects per
row) and hands a frozen :class:`SampleBatch` of numpy views to the store, which inserts it as
one Arrow table.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from millnet.model.float32 import float32_decimals


class Quality(IntEnum):
    """Sample quality, stored as an unsigned byte."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    STALE = 3  # the source went away (Sparkplug NDEATH/DDEATH); value is NaN


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """An immutable columnar batch of numeric samples; all arrays have the same length."""

    series_id: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.series_id.shape[0])

    def slice(self, start: int, stop: int) -> SampleBatch:
        """Samples ``start`` to ``stop`` (views, no copy)."""
        return SampleBatch(self.series_id[start:stop], self.ts_ns[start:stop],
                           self.value[start:stop], self.quality[start:stop])

    @staticmethod
    def empty() -> SampleBatch:
        return SampleBatch(
            np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64),
            np.empty(0, np.uint8),
        )

    @staticmethod
    def concat(batches: list[SampleBatch]) -> SampleBatch:
        if not batches:
            return SampleBatch.empty()
        if len(batches) == 1:
            return batches[0]
        return SampleBatch(
            np.concatenate([b.series_id for b in batches]),
            np.concatenate([b.ts_ns for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )


@dataclass(frozen=True, slots=True)
class TextSample:
    """A string-valued sample (machine state text, batch number, ...); low volume."""

    series_id: int
    ts_ns: int
    value: str
    quality: Quality = Quality.GOOD


@dataclass(slots=True)
class SampleBuffer:
    """Append-only builder for a :class:`SampleBatch`; not thread-safe."""

    series_id: array[int] = field(default_factory=lambda: array("i"))
    ts_ns: array[int] = field(default_factory=lambda: array("q"))
    value: array[float] = field(default_factory=lambda: array("d"))
    quality: array[int] = field(default_factory=lambda: array("B"))
    text: list[TextSample] = field(default_factory=list)
    # Positions of values that are float32 widened to double; freeze() makes them decimal.
    float32_at: array[int] = field(default_factory=lambda: array("q"))

    def append(self, series_id: int, ts_ns: int, value: float, quality: int = 0) -> None:
        self.series_id.append(series_id)
        self.ts_ns.append(ts_ns)
        self.value.append(value)
        self.quality.append(quality)

    def __len__(self) -> int:
        return len(self.series_id) + len(self.text)

    def freeze(self) -> SampleBatch:
        """Return the numeric samples as a batch (copies, so the buffer can be reused).

        Float32 values become their shortest decimal here, in bulk: see
        :mod:`millnet.model.float32`."""
        value = np.array(self.value, dtype=np.float64)
        if len(self.float32_at):
            at = np.frombuffer(self.float32_at, dtype=np.int64)
            value[at] = float32_decimals(value[at])
        return SampleBatch(
            np.array(self.series_id, dtype=np.int32),
            np.array(self.ts_ns, dtype=np.int64),
            value,
            np.array(self.quality, dtype=np.uint8),
        )

    def extend(self, other: SampleBuffer) -> None:
        """Append all of ``other``'s samples."""
        offset = len(self.value)
        self.series_id.extend(other.series_id)
        self.ts_ns.extend(other.ts_ns)
        self.value.extend(other.value)
        self.quality.extend(other.quality)
        self.text.extend(other.text)
        self.float32_at.extend(i + offset for i in other.float32_at)
