"""Telemetry store benchmark: insert rate and bytes per point, hot, compacted and archived.

    .venv/bin/python benchmarks/bench_store.py [--samples 10000000] [--series 1000]

Writes ``--samples`` samples through :meth:`DuckDBTelemetryStore.write` in batches of
``--batch`` and prints one JSON line.

The signal generator models a plant, not random numbers, because compression depends on it:

* ``series`` points on devices of 10 points; each device publishes all its points once a second
  with one timestamp at its own phase, in milliseconds (Sparkplug's resolution) plus a jitter
  of 0..``--jitter-ms`` ms; a batch holds the samples in arrival (time) order.
* 60 % analog process values (temperatures, pressures, flows): a mean-reverting drift around a
  setpoint that changes now and then, plus sensor noise of ``--noise`` resolution steps
  (standard deviation), **rounded to the sensor's resolution** (0.1 or 0.01), as real
  transmitters report. Float64 noise in the last bits would not compress and is not realistic.
* 20 % counters (integer totals, Poisson increments), 20 % states (0..4, changing every ten
  minutes on average).

Figures: ``insert_rows_per_s`` is samples over the time spent in ``write`` (validation, Arrow
conversion, last values, commit with WAL fsync; auto-checkpoints included).
``bytes_per_point_*`` divide the database's used blocks (and its file size) by the rows, after
``CHECKPOINT``: ``hot`` as ingested (arrival order), ``compacted`` after
:meth:`~DuckDBTelemetryStore.compact` sorted the day by series and time; ``parquet`` divides the
archive files' size by the rows they hold.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from millnet.bench.versions import versions
from millnet.model import SampleBatch
from millnet.telemetry import DuckDBTelemetryStore

DAY_NS = 86_400 * 10**9
T0 = 19_700 * DAY_NS  # a day boundary, so all samples fall into one day
POINTS_PER_DEVICE = 10


class Plant:
    """Per-series signal state; :meth:`step` advances every series by one second."""

    def __init__(self, n_series: int, noise: float, seed: int) -> None:
        rng = self.rng = np.random.default_rng(seed)
        self.n = n_series
        slot = np.arange(n_series) % POINTS_PER_DEVICE
        self.kind = np.where(slot < 6, 0, np.where(slot < 8, 1, 2))  # analog, counter, state
        self.resolution = np.where(rng.random(n_series) < 0.5, 0.1, 0.01)
        scale = np.where(self.resolution == 0.1, rng.uniform(20, 200, n_series),
                         rng.uniform(1, 10, n_series))
        self.setpoint = scale.copy()
        self.level = scale.copy()
        self.drift = scale * 2e-4
        self.noise = noise * self.resolution
        self.counter = rng.integers(0, 10**6, n_series).astype(np.float64)
        self.rate = rng.uniform(0.5, 3.0, n_series)
        self.state = rng.integers(0, 5, n_series).astype(np.float64)

    def step(self) -> npt.NDArray[np.float64]:
        rng, n = self.rng, self.n
        change = rng.random(n) < 1 / 3600
        self.setpoint = np.where(change, self.setpoint * rng.uniform(0.9, 1.1, n), self.setpoint)
        self.level += 0.01 * (self.setpoint - self.level) + rng.normal(0, 1, n) * self.drift
        analog = self.level + rng.normal(0, 1, n) * self.noise
        analog = np.round(analog / self.resolution) * self.resolution
        self.counter += rng.poisson(self.rate)
        flip = rng.random(n) < 1 / 600
        self.state = np.where(flip, rng.integers(0, 5, n), self.state)
        return np.where(self.kind == 0, analog, np.where(self.kind == 1, self.counter,
                                                          self.state))


def generate(n_series: int, n_samples: int, batch: int, jitter_ms: int, noise: float,
             seed: int = 1) -> Iterator[SampleBatch]:
    plant = Plant(n_series, noise, seed)
    rng = np.random.default_rng(seed + 1)
    devices = (n_series + POINTS_PER_DEVICE - 1) // POINTS_PER_DEVICE
    device = np.arange(n_series) // POINTS_PER_DEVICE
    phase_ms = rng.integers(0, 1000, devices)
    steps_per_batch = max(1, batch // n_series)
    sids = np.tile(np.arange(n_series, dtype=np.int32), steps_per_batch)
    step = 0
    for _ in range(n_samples // (steps_per_batch * n_series)):
        values = np.stack([plant.step() for _ in range(steps_per_batch)])
        ms = ((step + np.arange(steps_per_batch))[:, None] * 1000 + phase_ms[None, :]
              + rng.integers(0, jitter_ms + 1, (steps_per_batch, devices)))[:, device]
        ts = (T0 + ms.astype(np.int64) * 1_000_000).ravel()
        order = np.argsort(ts, kind="stable")  # arrival order
        yield SampleBatch(sids[order], ts[order], values.ravel()[order],
                          np.zeros(ts.shape[0], np.uint8))
        step += steps_per_batch


def timed(fn: object, *args: object, **kwargs: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)  # type: ignore[operator]
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--jitter-ms", type=int, default=5)
    parser.add_argument("--noise", type=float, default=1.0, help="in resolution steps")
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="millnet-bench-") as tmp:
        root = args.dir or Path(tmp)
        store = DuckDBTelemetryStore(root / "bench.duckdb", root / "archive", args.memory_limit)
        write_s = 0.0
        rows = 0
        started = time.perf_counter()
        for b in generate(args.series, args.samples, args.batch, args.jitter_ms, args.noise):
            write_s += timed(store.write, b)[1]
            rows += len(b)
        gen_s = time.perf_counter() - started - write_s
        ckpt_s = timed(store.checkpoint)[1]
        hot = store.stats()
        ids = list(range(args.series))
        end = T0 + 2 * DAY_NS  # the data lies in day one (a few samples may spill over)
        _, last_s = timed(store.last_values, ids)
        _, range_s = timed(store.query_range, [7], T0, end, limit=1_000_000)
        _, bucket_s = timed(store.query_buckets, ids[:100], T0, end, 60 * 10**9)
        moved, compact_s = timed(store.compact, end)
        store.checkpoint()
        compacted = store.stats()
        _, range_c_s = timed(store.query_range, [7], T0, end, limit=1_000_000)
        _, bucket_c_s = timed(store.query_buckets, ids[:100], T0, end, 60 * 10**9)
        result, archive_s = timed(store.archive_older_than, ids, end, "bench")
        _, bucket_a_s = timed(store.query_buckets, ids[:100], T0, end, 60 * 10**9)
        archived = store.stats()
        store.close()

    def per_point(n: int) -> float:
        return round(n / rows, 3)

    print(json.dumps({
        "benchmark": "telemetry_store_duckdb", "versions": versions(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "rows": rows, "series": args.series, "batch": args.batch, "jitter_ms": args.jitter_ms,
        "noise_steps": args.noise, "generate_s": round(gen_s, 2),
        "insert_rows_per_s": round(rows / write_s),
        "insert_s": round(write_s, 2), "checkpoint_s": round(ckpt_s, 2),
        "bytes_per_point_hot": per_point(hot.db_used_bytes),
        "bytes_per_point_hot_file": per_point(hot.db_file_bytes),
        "compacted_rows": moved, "compact_s": round(compact_s, 2),
        "bytes_per_point_compacted": per_point(compacted.db_used_bytes),
        "bytes_per_point_parquet": round(archived.archive_bytes / max(archived.archived_rows, 1),
                                         3),
        "archive_s": round(archive_s, 2), "archive_files": archived.archive_files,
        "archived_rows": archived.archived_rows, "hot_rows_after_archive": archived.rows,
        "last_values_1000_ms": round(last_s * 1e3, 2),
        "range_1_series_day_ms": {"hot": round(range_s * 1e3, 1),
                                  "compacted": round(range_c_s * 1e3, 1)},
        "buckets_100_series_1min_ms": {"hot": round(bucket_s * 1e3, 1),
                                       "compacted": round(bucket_c_s * 1e3, 1),
                                       "parquet": round(bucket_a_s * 1e3, 1)},
        "rows_moved_by": {"compact": moved, "archive": result.rows},  # type: ignore[attr-defined]
    }))


if __name__ == "__main__":
    main()
