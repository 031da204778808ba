"""An online detector from river: LODA (Pevný 2016), an ensemble of one-dimensional histograms
of the rows projected onto sparse random vectors; the score is the mean negative
log-likelihood of the projections.

LODA rather than HalfSpaceTrees: half-space trees split one feature at a time and, on the
52-dimensional Tennessee Eastman vector, gave nearly the same score to every row; LODA's
projections mix ~sqrt(p) features each and see a broken correlation as well as a shift.

Rows are standardised with the training window's mean and standard deviation, then whitened
along its principal axes (every axis, minor ones included, scaled to unit variance), all fixed
after training: an online scaler would stretch itself over a fault and hide it, and without the
whitening a broken correlation between two features reaches only the few projections that
happen to hold both (LODA projects on ~sqrt(p) features each).

The model learns the first 70 % of the training window; the limit is the ``quantile`` (default
0.99) of the scores of the other 30 %, which it has not seen (rows a histogram was built from
score optimistically), plus ``margin`` (default 0, in score units: the score is a negative
log-density, so 1.0 is a factor e in density); then it learns those rows too. ``adapt``
(default off) keeps learning from rows judged normal after training; off, a slow drift cannot
teach the model that it is normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from millnet.analytics.anomaly.base import (
    BoolArray,
    Description,
    FloatArray,
    ParamValue,
    StreamingDetector,
    float_param,
    int_param,
    no_more_params,
)


class RiverDetector(StreamingDetector):
    kind = "river"

    def __init__(self, n_features: int, *, train_samples: int = 500, quantile: float = 0.99,
                 margin: float = 0.0, bins: int = 10, projections: int = 100,
                 adapt: bool = False, seed: int = 7, consecutive: int = 1) -> None:
        super().__init__(n_features, train_samples=train_samples, consecutive=consecutive)
        from river.anomaly import LODA

        self.quantile = quantile
        self.margin = margin
        self.adapt = adapt
        self._model: Any = LODA(n_bins=bins, n_random_cuts=projections, seed=seed)  # untyped
        self.limit = float("inf")
        self._last_score = 0.0

    @classmethod
    def from_params(cls, n_features: int, train_samples: int,
                    params: dict[str, ParamValue]) -> RiverDetector:
        quantile = float_param(params, "quantile", 0.99, 0.5, 1.0)
        margin = float_param(params, "margin", 0.0, 0.0, 1e6)
        bins = int_param(params, "bins", 10, 2, 1000)
        projections = int_param(params, "projections", 100, 1, 10_000)
        adapt = int_param(params, "adapt", 0, 0, 1)
        seed = int_param(params, "seed", 7, 0, 2**31 - 1)
        consecutive = int_param(params, "consecutive", 1, 1, 1000)
        no_more_params(cls.kind, params)
        return cls(n_features, train_samples=train_samples, quantile=quantile, margin=margin,
                   bins=bins, projections=projections, adapt=bool(adapt), seed=seed,
                   consecutive=consecutive)

    def _fit(self, training: FloatArray) -> None:
        self._mean = training.mean(axis=0)
        std = training.std(axis=0)
        self._std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self._rotation = np.eye(self.n_features)
        z = self._standardise(training)
        corr = np.nan_to_num(np.cov(z, rowvar=False).reshape(self.n_features, -1))
        eigenvalues, vectors = np.linalg.eigh(corr)
        floor = max(float(eigenvalues.max()), 1.0) * 1e-6  # exact relations stay, scaled
        self._rotation = vectors / np.sqrt(np.maximum(eigenvalues, floor))
        z = self._standardise(training)
        # calibrate on rows the model has not learned: scores of learned rows are optimistic
        split = max(1, int(len(z) * 0.7))
        for row in z[:split]:
            self._model.learn_one(_as_dict(row))
        scores = np.array([self._model.score_one(_as_dict(row)) for row in z[split:]])
        for row in z[split:]:
            self._model.learn_one(_as_dict(row))
        finite = scores[np.isfinite(scores)]
        base = float(np.quantile(finite, self.quantile)) if finite.size else 0.0
        self.limit = base + self.margin

    def _standardise(self, rows: FloatArray) -> FloatArray:
        """Standardised, then whitened with the training window's principal axes."""
        z = np.nan_to_num((rows - self._mean) / self._std, nan=1e6, posinf=1e6, neginf=-1e6)
        whitened: FloatArray = np.clip(z @ self._rotation, -1e6, 1e6)  # river's bins stay finite
        return whitened

    def scores(self, rows: FloatArray) -> FloatArray:
        z = self._standardise(rows)
        return np.array([self._model.score_one(_as_dict(row)) for row in z], dtype=np.float64)

    def _flags(self, rows: FloatArray) -> BoolArray:
        z = self._standardise(rows)
        flags = np.zeros(rows.shape[0], dtype=np.bool_)
        for i, row in enumerate(z):
            features = _as_dict(row)
            score = float(self._model.score_one(features))
            flags[i] = not score <= self.limit  # NaN reads as anomalous
            if self.adapt and not flags[i]:
                self._model.learn_one(features)
            self._last_score = score
        return flags

    def _describe_model(self) -> Description:
        return {"score": self._last_score, "score_limit": self.limit,
                "method": "river.anomaly.LODA", "limit": self.limit,
                "quantile": self.quantile, "adapt": self.adapt,
                "last_score": self._last_score}


def _as_dict(row: FloatArray) -> dict[int, float]:
    return {i: float(v) for i, v in enumerate(row)}
