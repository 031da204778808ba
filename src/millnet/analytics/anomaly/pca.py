"""PCA monitoring with Hotelling's T² and SPE (Q): the classic process-monitoring baseline.

Training rows are standardised (mean and standard deviation per feature), the correlation
matrix is decomposed, and the first ``a`` components that explain ``variance`` (default 90 %)
of it form the model. For a new row z (standardised):

- T² = sum over the model's components of t_i² / lambda_i, with the limit
  a (n-1)(n+1) / (n (n-a)) F(confidence; a, n-a) (n training rows);
- SPE = |z - P Pᵀ z|², the part of the row the model cannot explain, with the
  Jackson-Mudholkar limit (Box's g chi²(h) where that approximation breaks down).

``statistic`` chooses what flags: "t2", "spe" or "either" (default); ``describe`` reports both.
With "either", each statistic is tested at 1 - (1 - confidence) / 2 (Bonferroni), so that the
row's false alarm probability stays 1 - confidence: at 99 % for each, the two together flagged
4.7 % of a normal TEP run (autocorrelated data exceed both nominal rates).

``calibrate`` (default on) guards the limits against what the theory assumes and plant data are
not (independent, stationary, Gaussian rows): a model fitted on the first 70 % of the training
window scores the other 30 %, and where those unseen normal rows exceed a limit more often than
the confidence allows, that limit is raised by the ratio of their quantile to it (never
lowered). The final model is then fitted on the whole window. Off, the limits are the textbook
ones (the evaluation's PCA T² baseline runs this way).
Features constant over training carry no variance: they are left out of the model, and any
departure from their value is flagged (as in the robust detector). A singular correlation
matrix only limits ``a`` to the components with non-zero variance.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2, f, norm  # type: ignore[import-untyped]

from millnet.analytics.anomaly.base import (
    BoolArray,
    Description,
    FloatArray,
    ParamValue,
    StreamingDetector,
    choice_param,
    float_param,
    int_param,
    no_more_params,
)

STATISTICS = ("either", "t2", "spe")
HOLD_OUT_SPLIT = 0.7


def _inflation(held_out: FloatArray, limit: float, confidence: float) -> float:
    """How far the held-out rows' quantile exceeds the theoretical limit (>= 1)."""
    finite = held_out[np.isfinite(held_out)]
    if not finite.size or not np.isfinite(limit) or limit <= 0:
        return 1.0
    return max(1.0, float(np.quantile(finite, confidence)) / limit)


def t2_limit(components: int, n: int, confidence: float) -> float:
    """Hotelling's T² limit from the F distribution (new observation, estimated mean)."""
    a = components
    if a <= 0 or n - a <= 0:
        return float("inf")
    factor = a * (n - 1) * (n + 1) / (n * (n - a))
    return float(factor * f.ppf(confidence, a, n - a))


def spe_limit(residual_eigenvalues: FloatArray, confidence: float) -> float:
    """Jackson-Mudholkar limit of SPE; Box's approximation when h0 is not positive."""
    lam = residual_eigenvalues[residual_eigenvalues > 0]
    theta1, theta2, theta3 = (float((lam**k).sum()) for k in (1, 2, 3))
    if theta1 <= 1e-12:  # nothing outside the model: any residual breaks an exact relation
        return 1e-9
    h0 = 1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2)
    if h0 > 0:
        c = float(norm.ppf(confidence))
        inner = (c * np.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0
                 + theta2 * h0 * (h0 - 1.0) / theta1**2)
        if inner > 0:
            return float(theta1 * inner ** (1.0 / h0))
    g, h = theta2 / theta1, theta1**2 / theta2
    return float(g * chi2.ppf(confidence, h))


class PcaDetector(StreamingDetector):
    kind = "pca"
    persisted = ("variance", "confidence", "statistic", "calibrate", "t2_factor", "spe_factor",
                 "components", "t2_limit", "spe_limit", "_mean", "_std", "_kept", "_loadings",
                 "_eigenvalues")

    def __init__(self, n_features: int, *, train_samples: int = 500, variance: float = 0.9,
                 confidence: float = 0.99, statistic: str = "either",
                 calibrate: bool = True, consecutive: int = 1) -> None:
        super().__init__(n_features, train_samples=train_samples, consecutive=consecutive)
        self.variance = variance
        self.confidence = confidence
        self.statistic = statistic
        self.calibrate = calibrate
        self.t2_factor = self.spe_factor = 1.0
        self.components = 0
        self.t2_limit = float("inf")
        self.spe_limit = float("inf")
        self._last_t2 = 0.0
        self._last_spe = 0.0

    @classmethod
    def from_params(cls, n_features: int, train_samples: int,
                    params: dict[str, ParamValue]) -> PcaDetector:
        variance = float_param(params, "variance", 0.9, 0.01, 1.0)
        confidence = float_param(params, "confidence", 0.99, 0.5, 1.0 - 1e-12)
        statistic = choice_param(params, "statistic", "either", STATISTICS)
        calibrate = int_param(params, "calibrate", 1, 0, 1)
        consecutive = int_param(params, "consecutive", 1, 1, 1000)
        no_more_params(cls.kind, params)
        return cls(n_features, train_samples=train_samples, variance=variance,
                   confidence=confidence, statistic=statistic, calibrate=bool(calibrate),
                   consecutive=consecutive)

    def _fit(self, training: FloatArray) -> None:
        self.t2_factor = self.spe_factor = 1.0
        split = int(training.shape[0] * HOLD_OUT_SPLIT)
        if self.calibrate and split >= 2 and training.shape[0] - split >= 10:
            self._fit_model(training[:split])
            t2, spe = self.statistics(training[split:])
            each = self._each_confidence()
            self.t2_factor = _inflation(t2, self.t2_limit, each)
            self.spe_factor = _inflation(spe, self.spe_limit, each)
        self._fit_model(training)
        self.t2_limit *= self.t2_factor
        self.spe_limit *= self.spe_factor

    def _each_confidence(self) -> float:
        return self.confidence if self.statistic != "either" else (1 + self.confidence) / 2

    def _fit_model(self, training: FloatArray) -> None:
        n = training.shape[0]
        self._mean = training.mean(axis=0)
        std = training.std(axis=0, ddof=1)
        tolerance = 1e-9 * np.maximum(1.0, np.abs(self._mean))
        self._kept = np.isfinite(std) & np.isfinite(self._mean) & (std > tolerance)
        self._std = np.where(self._kept, std, 1.0)
        z = self._standardise(training)
        corr = np.nan_to_num(z.T @ z / (n - 1), nan=0.0, posinf=0.0, neginf=0.0)
        eigenvalues, vectors = np.linalg.eigh(corr)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues = np.clip(eigenvalues[order], 0.0, None)
        vectors = vectors[:, order]
        self.components = self._choose_components(eigenvalues, n)
        self._loadings = vectors[:, : self.components]
        self._eigenvalues = eigenvalues[: self.components]
        each = self._each_confidence()
        self.t2_limit = t2_limit(self.components, n, each)
        self.spe_limit = spe_limit(eigenvalues[self.components:], each)

    def _choose_components(self, eigenvalues: FloatArray, n: int) -> int:
        total = float(eigenvalues.sum())
        if total <= 0:
            return 0
        cumulative = np.cumsum(eigenvalues) / total
        wanted = int(np.searchsorted(cumulative, self.variance - 1e-12)) + 1
        usable = int((eigenvalues > 1e-10 * eigenvalues[0]).sum())
        return max(1, min(wanted, usable, n - 1))

    def _standardise(self, rows: FloatArray) -> FloatArray:
        z = (rows - self._mean) / self._std
        return np.where(self._kept, z, 0.0)

    def statistics(self, rows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """T² and SPE of complete rows (NaN from an overflow reads as infinitely far)."""
        z = self._standardise(rows)
        scores = z @ self._loadings
        t2 = (scores**2 / np.where(self._eigenvalues > 0, self._eigenvalues, 1.0)).sum(axis=1)
        residual = z - scores @ self._loadings.T
        spe = (residual**2).sum(axis=1)
        departed = (np.abs(rows - self._mean) > 1e-9 * np.maximum(1.0, np.abs(self._mean)))
        spe = np.where((departed & ~self._kept).any(axis=1), np.inf, spe)
        return np.nan_to_num(t2, nan=np.inf), np.nan_to_num(spe, nan=np.inf)

    def _flags(self, rows: FloatArray) -> BoolArray:
        t2, spe = self.statistics(rows)
        self._last_t2, self._last_spe = float(t2[-1]), float(spe[-1])
        over_t2 = t2 > self.t2_limit
        over_spe = spe > self.spe_limit
        if self.statistic == "t2":
            return np.asarray(over_t2, dtype=np.bool_)
        if self.statistic == "spe":
            return np.asarray(over_spe, dtype=np.bool_)
        return np.asarray(over_t2 | over_spe, dtype=np.bool_)

    def _describe_model(self) -> Description:
        t2_ratio = self._last_t2 / self.t2_limit if self.t2_limit > 0 else float("inf")
        spe_ratio = self._last_spe / self.spe_limit if self.spe_limit > 0 else float("inf")
        use_t2 = self.statistic == "t2" or (
            self.statistic == "either" and t2_ratio >= spe_ratio)
        score, limit = ((self._last_t2, self.t2_limit) if use_t2
                        else (self._last_spe, self.spe_limit))
        return {"score": score, "score_limit": limit, "statistic": self.statistic,
                "components": self.components, "confidence": self.confidence,
                "t2_limit": self.t2_limit,
                "spe_limit": self.spe_limit, "last_t2": self._last_t2,
                "last_spe": self._last_spe, "t2_factor": self.t2_factor,
                "spe_factor": self.spe_factor,
                "constant_features": int((~self._kept).sum())}
