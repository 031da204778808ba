"""The streaming detector interface the rule engine hosts, one detector per device.

A detector sees the device's points as one vector per row. It spends its first
``train_samples`` complete rows learning normal behaviour (and flags nothing), then answers per
row whether the row is anomalous. Rows with a missing value (NaN, or an infinity, which no
method can place) are neither learned nor flagged: a gap in the data is not an anomaly, and the
quality of a sample is another rule's business.

The methods differ only in ``_fit`` (learn from the training window) and ``_flags`` (judge
complete rows); ``StreamingDetector.update`` does the bookkeeping once for all of them.
"""

from __future__ import annotations

import io
import math
import zipfile
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from millnet.errors import InvalidInput

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ParamValue = float | int | str | bool
Description = dict[str, float | int | str | bool]

DETECTOR_KINDS = ("robust", "pca", "river")


@runtime_checkable
class Detector(Protocol):
    """What the rule engine needs of a per-device anomaly detector."""

    n_features: int

    @property
    def trained(self) -> bool:
        """False while the detector is still learning normal behaviour."""
        ...

    def update(self, x: FloatArray) -> BoolArray:
        """Learn from or judge ``x``: (n, n_features) rows in time order.

        Rows seen while not trained are learned (the first ``train_samples`` complete rows)
        and get False; afterwards each row gets whether it is anomalous. Rows with NaN are
        neither learned nor flagged. Never raises on numeric input of the right width."""
        ...

    def describe(self) -> Description:
        """Limits, last scores and state, for the API and the alarm's message. Once trained,
        every kind has ``score`` (the last judged row's statistic) and ``score_limit`` (the row
        exceeds when score > score_limit, before ``consecutive``)."""
        ...


class StreamingDetector(ABC):
    """Shared bookkeeping: training buffer, NaN rows, k consecutive exceedances."""

    kind = "abstract"
    # attributes that make up the model, saved by to_bytes; None: this kind is not persisted
    persisted: tuple[str, ...] | None = None

    def __init__(self, n_features: int, *, train_samples: int, consecutive: int = 1) -> None:
        if n_features < 1:
            raise InvalidInput("must be at least 1", "n_features")
        if train_samples < 2:
            raise InvalidInput("must be at least 2", "train_samples")
        if consecutive < 1:
            raise InvalidInput("must be at least 1", "consecutive")
        self.n_features = n_features
        self.train_samples = train_samples
        self.consecutive = consecutive
        self._buffer: list[FloatArray] = []
        self._buffered = 0
        self._trained = False
        self._run = 0  # exceedances in a row so far, for ``consecutive``
        self._rows_judged = 0
        self._rows_flagged = 0

    @property
    def trained(self) -> bool:
        return self._trained

    def update(self, x: FloatArray) -> BoolArray:
        rows = _as_rows(x, self.n_features)
        flags = np.zeros(rows.shape[0], dtype=np.bool_)
        complete = np.isfinite(rows).all(axis=1)
        index = np.flatnonzero(complete)
        if not self._trained and index.size:
            take = min(index.size, self.train_samples - self._buffered)
            self._buffer.append(rows[index[:take]].copy())
            self._buffered += take
            index = index[take:]
            if self._buffered >= self.train_samples:
                training = np.concatenate(self._buffer)
                self._buffer = []
                with np.errstate(all="ignore"):
                    self._fit(training)
                self._trained = True
        if self._trained and index.size:
            with np.errstate(all="ignore"):
                raw = self._flags(rows[index])
            flags[index] = self._debounce(raw)
            self._rows_judged += int(index.size)
            self._rows_flagged += int(flags.sum())
        return flags

    def _debounce(self, raw: BoolArray) -> BoolArray:
        """A row is flagged once ``consecutive`` complete rows in a row exceed the limit."""
        if self.consecutive == 1:
            return raw
        out = np.zeros_like(raw)
        run = self._run
        for i, hit in enumerate(raw):
            run = run + 1 if hit else 0
            out[i] = run >= self.consecutive
        self._run = run
        return out

    def describe(self) -> Description:
        state: Description = {
            "kind": self.kind, "n_features": self.n_features, "trained": self._trained,
            "train_samples": self.train_samples, "learned": self._buffered,
            "consecutive": self.consecutive, "rows_judged": self._rows_judged,
            "rows_flagged": self._rows_flagged,
        }
        if self._trained:
            state.update(self._describe_model())
        return state

    def to_bytes(self) -> bytes:
        """The detector (training progress or trained model) as an .npz of numpy arrays, for
        ``load_detector`` after a restart. InvalidInput for a kind that is not persisted."""
        if self.persisted is None:
            raise InvalidInput(f"a {self.kind!r} detector is not persisted; it learns again",
                               "kind")
        buffered = (np.concatenate(self._buffer) if self._buffer
                    else np.zeros((0, self.n_features)))
        arrays: dict[str, NDArray[np.generic]] = {
            "kind": np.array(self.kind), "buffer": buffered,
            "counts": np.array([self.n_features, self.train_samples, self.consecutive,
                                self._buffered, int(self._trained), self._run,
                                self._rows_judged, self._rows_flagged], dtype=np.int64)}
        for name in self.persisted:
            if hasattr(self, name):
                arrays[f"model{name}"] = np.asarray(getattr(self, name))
        out = io.BytesIO()
        np.savez(out, **arrays)  # type: ignore[arg-type]
        return out.getvalue()

    def _restore(self, stored: dict[str, NDArray[np.generic]]) -> None:
        counts = [int(c) for c in stored["counts"]]
        _, _, _, self._buffered, trained, self._run, self._rows_judged, self._rows_flagged = counts
        self._trained = bool(trained)
        self._buffer = [np.asarray(stored["buffer"], dtype=np.float64)] if not trained else []
        for name in self.persisted or ():
            if f"model{name}" in stored:
                value = stored[f"model{name}"]
                setattr(self, name, value.item() if value.ndim == 0 else value)

    @abstractmethod
    def _fit(self, training: FloatArray) -> None:
        """Learn normal behaviour from complete rows (train_samples, n_features)."""

    @abstractmethod
    def _flags(self, rows: FloatArray) -> BoolArray:
        """Per complete row: does it exceed the limit (before ``consecutive``)?"""

    @abstractmethod
    def _describe_model(self) -> Description:
        """Limits and last scores of the trained model."""


def _as_rows(x: FloatArray, n_features: int) -> FloatArray:
    rows = np.asarray(x, dtype=np.float64)
    if rows.ndim == 1 and rows.shape[0] == n_features:
        rows = rows.reshape(1, n_features)
    if rows.ndim != 2 or rows.shape[1] != n_features:
        raise InvalidInput(f"expected rows of {n_features} values, got shape {rows.shape}", "x")
    return rows


def robust_scale(values: FloatArray, center: FloatArray) -> FloatArray:
    """Per column 1.4826 * MAD (a standard deviation for Gaussian data), falling back to
    1.2533 * mean absolute deviation where more than half the values sit on the median (step
    or quantised signals); 0 only for a column that is constant."""
    deviation = np.abs(values - center)
    scale = 1.4826 * np.median(deviation, axis=0)
    fallback = 1.2533 * deviation.mean(axis=0)
    return np.where(scale > 0, scale, fallback)


def float_param(params: dict[str, ParamValue], name: str, default: float,
                low: float, high: float) -> float:
    """Pop a number from ``params``, checked against [low, high]."""
    value = params.pop(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"must be a number, got {value!r}", name)
    number = float(value)
    if not (low <= number <= high) or math.isnan(number):
        raise InvalidInput(f"must be within [{low}, {high}], got {number}", name)
    return number


def int_param(params: dict[str, ParamValue], name: str, default: int,
              low: int, high: int) -> int:
    number = float_param(params, name, default, low, high)
    if number != int(number):
        raise InvalidInput(f"must be a whole number, got {number}", name)
    return int(number)


def choice_param(params: dict[str, ParamValue], name: str, default: str,
                 choices: tuple[str, ...]) -> str:
    value = params.pop(name, default)
    if value not in choices:
        raise InvalidInput(f"must be one of {', '.join(choices)}, got {value!r}", name)
    return str(value)


def no_more_params(kind: str, params: dict[str, ParamValue]) -> None:
    if params:
        name = sorted(params)[0]
        raise InvalidInput(f"unknown parameter for a {kind!r} detector", name)


def make_detector(kind: str, n_features: int, *, train_samples: int = 500,
                  **params: ParamValue) -> StreamingDetector:
    """A new untrained detector of ``kind`` ("robust", "pca" or "river").

    Raises InvalidInput naming ``kind`` or the offending parameter."""
    from millnet.analytics.anomaly.pca import PcaDetector
    from millnet.analytics.anomaly.river_detector import RiverDetector
    from millnet.analytics.anomaly.robust import RobustDetector

    factories = {"robust": RobustDetector.from_params, "pca": PcaDetector.from_params,
                 "river": RiverDetector.from_params}
    factory = factories.get(kind)
    if factory is None:
        raise InvalidInput(f"unknown detector {kind!r}; one of {', '.join(DETECTOR_KINDS)}",
                           "kind")
    return factory(n_features, train_samples, dict(params))


def load_detector(data: bytes) -> StreamingDetector:
    """A detector saved by ``to_bytes`` (read as numpy arrays only, never unpickled)."""
    from millnet.analytics.anomaly.pca import PcaDetector
    from millnet.analytics.anomaly.robust import RobustDetector

    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive")
        with archive:
            stored = {name: archive[name] for name in archive.files}
        kind = str(stored["kind"])
        n_features, train_samples, consecutive = (int(c) for c in stored["counts"][:3])
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
            zipfile.BadZipFile) as exc:
        raise InvalidInput(f"not a saved detector: {exc}", "data") from exc
    classes: dict[str, type[StreamingDetector]] = {"robust": RobustDetector,
                                                   "pca": PcaDetector}
    if kind not in classes:
        raise InvalidInput(f"not a saved detector kind: {kind!r}", "data")
    detector = classes[kind](n_features, train_samples=train_samples, consecutive=consecutive)
    detector._restore(stored)
    return detector
