"""Tennessee Eastman Process runs for the anomaly evaluation, generated with tep-studio.

tep-studio simulates the *modified* TEP (Downs and Vogel's plant with the revised model of
Bathelt, Ricker and Jelali) under Ricker's decentralised multiloop control, with 28
disturbances: IDV(1)-IDV(20) as in the classic set plus IDV(21)-IDV(28) of the revised model.
The set-up follows the classic data sets (Chiang, Russell and Braatz): 48 h runs sampled every
3 min (960 samples), the fault switched on at hour 8 (sample 160) and left on. A run that trips
the plant (e.g. IDV(6), loss of A feed) ends at the trip; what was sampled before counts.

Every run is preceded by ``warmup_hours`` (default 16 h) that are simulated and dropped: the
controller starts from the Mode-1 state with a deterministic start-up swing of about 15 h
(stripper level 40-54 %), which, left in, made the first hours of every run look like a fault.
Hour 0 of a run is the end of its warm-up.

The vector per sample is the 41 measurements XMEAS(1..41) and the 11 implemented manipulated
variables XMV(1..11), the classic 52 (XMV(12), the agitator, is constant).

The controller acts every ``control_interval`` h (default 0.002 h = 7.2 s, a usual DCS scan;
tep-studio's default is 0.0005 h, which costs about three times as much to simulate: the plant is
integrated with fixed 0.0005 h RK4 steps either way, the Python controller call per step is what
a finer interval adds). Seeds are fixed per run, so every figure is reproducible; runs are
cached as .npz files (numpy arrays only, loaded without pickle) keyed by everything that shapes
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

N_FAULTS = 28
CLASSIC_FAULTS = tuple(range(1, 21))
XMV_USED = 11

TRAIN_SEED = 1_431_655_765.0  # Downs and Vogel's default random seed
NORMAL_SEED = 2_718_281_829.0
FAULT_SEED_BASE = 1_000_003.0


@dataclass(frozen=True)
class RunSpec:
    """Everything that shapes one simulated run (and so its cache key)."""

    fault: int  # 0: normal operation
    seed: float
    hours: float = 48.0
    fault_hour: float = 8.0
    warmup_hours: float = 16.0
    sample_minutes: float = 3.0
    control_interval: float = 0.002

    @property
    def fault_sample(self) -> int:
        """Index of the first sample taken with the fault on."""
        return round(self.fault_hour * 60.0 / self.sample_minutes)

    def key(self) -> str:
        blob = json.dumps([self.fault, self.seed, self.hours, self.fault_hour,
                           self.warmup_hours, self.sample_minutes, self.control_interval,
                           41 + XMV_USED, version("tep-studio")])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TepRun:
    spec: RunSpec
    data: NDArray[np.float64]  # (samples, 52)
    tripped: bool  # the plant shut down before the horizon
    seconds: float  # generation time (0 when read from the cache)


def fault_seed(fault: int) -> float:
    return FAULT_SEED_BASE * (fault + 1)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "millnet" / "tep"


def simulate(spec: RunSpec) -> tuple[NDArray[np.float64], bool]:
    """Run the closed loop; (samples x 52 matrix, tripped)."""
    from tep_studio import ClosedLoopSimulation  # type: ignore[import-untyped]

    fault_on = spec.warmup_hours + spec.fault_hour

    def schedule(hours: float) -> NDArray[np.float64]:
        idv = np.zeros(N_FAULTS)
        if spec.fault and hours >= fault_on - 1e-9:
            idv[spec.fault - 1] = 1.0
        return idv

    every = max(1, round(spec.sample_minutes / 60.0 / spec.control_interval))
    result = ClosedLoopSimulation(control_interval=spec.control_interval,
                                  horizon=spec.warmup_hours + spec.hours).run(
        seed=spec.seed, disturbance_schedule=schedule, record_every=every)
    # record_every keeps steps 0, every, 2*every...: the sample at the end of each period
    rows = [np.concatenate([r.measurements, r.implemented_action[:XMV_USED]])
            for r in result.results
            if not r.shutdown_status["terminated"] and r.time_start >= spec.warmup_hours - 1e-9]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 41 + XMV_USED), bool(result.terminated)


def _generate(spec: RunSpec, path: Path) -> TepRun:
    started = time.perf_counter()
    data, tripped = simulate(spec)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # concurrent runs: own file
    np.savez(partial, data=data, tripped=np.array(tripped))
    partial.replace(path)  # a crash mid-write never leaves a truncated cache entry
    return TepRun(spec, data, tripped, seconds)


def load_or_generate(spec: RunSpec, cache_dir: Path) -> TepRun:
    path = cache_dir / f"run-{spec.fault:02d}-{spec.key()}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return TepRun(spec, np.asarray(stored["data"], dtype=np.float64),
                          bool(stored["tripped"]), 0.0)
    return _generate(spec, path)


def load_runs(specs: list[RunSpec], cache_dir: Path, workers: int = 2,
              progress: Callable[[TepRun], None] | None = None) -> list[TepRun]:
    """The runs of ``specs`` in order, from the cache or simulated (``workers`` processes)."""
    runs: dict[int, TepRun] = {}
    missing = []
    for i, spec in enumerate(specs):
        path = cache_dir / f"run-{spec.fault:02d}-{spec.key()}.npz"
        if path.exists():
            runs[i] = load_or_generate(spec, cache_dir)
        else:
            missing.append(i)
    if missing and workers > 1 and len(missing) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(missing))) as pool:
            futures = {i: pool.submit(load_or_generate, specs[i], cache_dir) for i in missing}
            for i, future in futures.items():
                runs[i] = future.result()
                if progress:
                    progress(runs[i])
    else:
        for i in missing:
            runs[i] = load_or_generate(specs[i], cache_dir)
            if progress:
                progress(runs[i])
    return [runs[i] for i in range(len(specs))]
