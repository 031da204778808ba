"""Each streaming detector on synthetic data: normal Gaussian data stays under the false alarm
target, a shift in mean is detected, a broken correlation is detected by the multivariate
detectors (the robust detector is univariate by design and cannot see one), and NaN rows,
constant features and singular covariances are handled."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from millnet.analytics.anomaly.base import Detector, load_detector, make_detector
from millnet.analytics.anomaly.pca import spe_limit, t2_limit
from millnet.analytics.anomaly.robust import bonferroni_limit
from millnet.errors import InvalidInput

KINDS = ("robust", "pca", "river")
P = 8
TRAIN = 600


def correlated(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Four latent drivers, each seen by two features (x[2k+1] = x[2k] + small noise)."""
    latent = rng.normal(size=(n, P // 2))
    x = np.repeat(latent, 2, axis=1)
    x[:, 1::2] += 0.1 * rng.normal(size=(n, P // 2))
    return x * 3.0 + 10.0


def trained(kind: str, rng: np.random.Generator) -> Detector:
    detector = make_detector(kind, P, train_samples=TRAIN)
    flags = detector.update(correlated(rng, TRAIN))
    assert detector.trained and not flags.any()
    return detector


@pytest.mark.parametrize("kind", KINDS)
def test_normal_data_stays_under_the_false_alarm_target(kind: str) -> None:
    rng = np.random.default_rng(1)
    detector = trained(kind, rng)
    assert detector.update(correlated(rng, 2000)).mean() <= 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_a_shift_in_mean_is_detected(kind: str) -> None:
    rng = np.random.default_rng(2)
    detector = trained(kind, rng)
    shifted = correlated(rng, 300)
    shifted[:, 0:2] += 8.0 * 3.0  # eight standard deviations on one driver
    assert detector.update(shifted).mean() >= 0.9


@pytest.mark.parametrize("kind", ["pca", "river"])
def test_a_broken_correlation_is_detected(kind: str) -> None:
    rng = np.random.default_rng(3)
    detector = trained(kind, rng)
    broken = correlated(rng, 300)
    broken[:, 1] = 20.0 - broken[:, 0]  # same marginal distribution, opposite sign
    robust = trained("robust", np.random.default_rng(3))
    assert robust.update(broken).mean() <= 0.05  # invisible one feature at a time
    assert detector.update(broken).mean() >= 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_rows_with_nan_are_neither_learned_nor_flagged(kind: str) -> None:
    rng = np.random.default_rng(4)
    detector = make_detector(kind, P, train_samples=50)
    data = correlated(rng, 120)
    data[::3, 2] = np.nan
    flags = detector.update(data[:60])  # 40 complete rows: still learning
    assert not detector.trained and not flags.any()
    assert detector.describe()["learned"] == 40
    detector.update(data[60:90])  # 20 complete rows: 10 finish the training
    assert detector.trained and detector.describe()["rows_judged"] == 10
    far_out = data[90:].copy()
    far_out[:, 0] += 1e3
    flags = detector.update(far_out)
    nan_rows = np.isnan(far_out).any(axis=1)
    assert not flags[nan_rows].any()
    assert flags[~nan_rows].all()


@pytest.mark.parametrize("kind", KINDS)
def test_constant_features_and_a_singular_covariance(kind: str) -> None:
    rng = np.random.default_rng(5)
    data = correlated(rng, 200)
    data[:, 3] = 7.0  # constant
    data[:, 5] = data[:, 4]  # exact duplicate: singular covariance
    detector = make_detector(kind, P, train_samples=100)
    detector.update(data[:100])
    assert detector.trained
    assert detector.update(data[100:]).mean() <= 0.1
    moved = data[100:].copy()
    moved[:, 0] += 40.0
    assert detector.update(moved).mean() >= 0.9
    state = detector.describe()
    assert state["trained"] is True
    score, limit = state["score"], state["score_limit"]
    assert isinstance(score, float) and isinstance(limit, float) and score > limit


@pytest.mark.parametrize("kind", ["robust", "pca"])
def test_a_constant_feature_that_moves_is_flagged(kind: str) -> None:
    rng = np.random.default_rng(6)
    data = correlated(rng, 150)
    data[:, 3] = 7.0
    detector = make_detector(kind, P, train_samples=100)
    detector.update(data[:100])
    later = data[100:].copy()
    later[:, 3] = 7.5
    assert detector.update(later).all()


def test_consecutive_exceedances_suppress_single_spikes() -> None:
    rng = np.random.default_rng(7)
    detector = make_detector("robust", P, train_samples=TRAIN, consecutive=3)
    detector.update(correlated(rng, TRAIN))
    data = correlated(rng, 30)
    data[10, 0] += 100.0  # one spike
    data[20:, 0] += 100.0  # a lasting shift
    flags = detector.update(data)
    assert not flags[:20].any()
    assert not flags[20:22].any() and flags[22:].all()


def test_update_takes_a_single_row_and_rejects_a_wrong_width() -> None:
    detector = make_detector("pca", 3, train_samples=5)
    assert detector.update(np.ones(3)).shape == (1,)
    with pytest.raises(InvalidInput) as error:
        detector.update(np.ones((2, 4)))
    assert error.value.field == "x"


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("forest", {}, "kind"),
    ("pca", {"statistic": "q"}, "statistic"),
    ("pca", {"confidence": 1.5}, "confidence"),
    ("robust", {"alpha": "x"}, "alpha"),
    ("robust", {"window": 3}, "window"),
    ("river", {"quantile": 0.1}, "quantile"),
    ("river", {"consecutive": 2.5}, "consecutive"),
])
def test_make_detector_names_a_bad_kind_or_parameter(
        kind: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        make_detector(kind, 4, **params)
    assert error.value.field == field


def test_make_detector_rejects_a_bad_size() -> None:
    with pytest.raises(InvalidInput, match="train_samples"):
        make_detector("robust", 4, train_samples=1)
    with pytest.raises(InvalidInput, match="n_features"):
        make_detector("robust", 0)


def test_describe_reports_both_pca_statistics_and_their_limits() -> None:
    rng = np.random.default_rng(8)
    detector = trained("pca", rng)
    detector.update(correlated(rng, 5))
    state = detector.describe()
    assert state["components"] == 4  # the four drivers explain > 90 %
    for key in ("t2_limit", "spe_limit", "last_t2", "last_spe"):
        value = state[key]
        assert isinstance(value, float) and value >= 0


def test_limits_match_their_formulas() -> None:
    # Bonferroni: 52 features at alpha 0.001 -> two-sided quantile at 0.001/52
    assert bonferroni_limit(0.001, 52) == pytest.approx(4.27, abs=0.01)
    assert bonferroni_limit(0.05, 1) == pytest.approx(1.96, abs=0.001)
    # T² with 1 component and many rows tends to the chi²(1) quantile, 6.63 at 99 %
    assert t2_limit(1, 100_000, 0.99) == pytest.approx(6.635, abs=0.01)
    assert t2_limit(3, 3, 0.99) == float("inf")
    # SPE of m equal residual eigenvalues 1 is chi²(m): 99 % of chi²(10) is 23.2
    assert spe_limit(np.ones(10), 0.99) == pytest.approx(23.2, rel=0.03)
    assert spe_limit(np.zeros(3), 0.99) == pytest.approx(1e-9)


@pytest.mark.parametrize("kind", ["robust", "pca"])
def test_a_saved_detector_judges_as_before_after_a_restart(kind: str) -> None:
    rng = np.random.default_rng(9)
    detector = make_detector(kind, P, train_samples=TRAIN, consecutive=2)
    detector.update(correlated(rng, 200))
    halfway = load_detector(detector.to_bytes())  # saved while still learning
    assert not halfway.trained and halfway.describe()["learned"] == 200
    rest = correlated(rng, TRAIN - 200)
    detector.update(rest)
    halfway.update(rest)
    probe = correlated(rng, 300)
    probe[150:, 1] = 20.0 - probe[150:, 0]
    probe[200:, 2] += 30.0
    restored = load_detector(detector.to_bytes())
    assert restored.describe() == detector.describe()
    expected = detector.update(probe)
    assert expected.any()
    assert np.array_equal(restored.update(probe), expected)
    assert np.array_equal(halfway.update(probe), expected)


def test_bytes_that_are_not_a_saved_detector_are_refused() -> None:
    single = io.BytesIO()
    np.save(single, np.ones(3))
    for data in (b"", b"PK\x03\x04 not a zip", b"\x93NUMPY", single.getvalue()):
        with pytest.raises(InvalidInput) as error:
            load_detector(data)
        assert error.value.field == "data"
    with pytest.raises(InvalidInput) as error:
        make_detector("river", 3).to_bytes()
    assert error.value.field == "kind"
