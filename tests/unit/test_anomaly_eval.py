"""The evaluation's arithmetic: delays, averages, the choice of the best detector and the
targets; the CLI's option parsing; the published table."""

from __future__ import annotations

import numpy as np
import pytest

from millnet.analytics.evaluate import (
    BASELINE,
    DetectorSummary,
    Evaluation,
    FaultScore,
    _check_targets,
    _summary,
    detection_delay,
)
from millnet.analytics.published import PCA_T2_DETECTION_RATE, published_t2
from millnet.analytics.tep import RunSpec
from millnet.cli_eval import DEFAULT_FAULTS, parse_detectors, parse_faults
from millnet.errors import InvalidInput


def test_delay_is_the_first_of_k_consecutive_flags_after_the_start() -> None:
    flags = np.zeros(20, dtype=np.bool_)
    flags[2:5] = True  # before the fault: ignored
    flags[[11, 12, 14, 15, 16]] = True
    assert detection_delay(flags, 10, 3, 3.0) == (14 - 10) * 3.0
    assert detection_delay(flags, 10, 1, 3.0) == 3.0
    assert detection_delay(flags, 10, 4, 3.0) is None


def summary(name: str, rate: float, far: float) -> DetectorSummary:
    return DetectorSummary(name, rate, far, 0.0, None, 0, 0.0)


def test_the_best_detector_keeps_the_false_alarm_target() -> None:
    result = Evaluation(summaries={
        "pca": summary("pca", 0.80, 0.06),  # best rate, but too many false alarms
        "river": summary("river", 0.75, 0.03),
        "robust": summary("robust", 0.70, 0.01),
        BASELINE: summary(BASELINE, 0.72, 0.02)})
    _check_targets(result)
    assert result.best == "river" and result.ok


def test_a_missed_target_is_a_failure() -> None:
    result = Evaluation(summaries={
        "robust": summary("robust", 0.60, 0.01), BASELINE: summary(BASELINE, 0.72, 0.02)})
    _check_targets(result)
    assert not result.ok and "below PCA" in result.failures[0]
    result = Evaluation(summaries={
        "pca": summary("pca", 0.90, 0.08), BASELINE: summary(BASELINE, 0.72, 0.02)})
    _check_targets(result)
    assert result.best == "pca" and "false alarm" in result.failures[0]


def test_summary_averages_over_faults_and_delays_over_detected_ones() -> None:
    scores = [FaultScore(1, "pca", 1.0, 0.0, 6.0, 960, False),
              FaultScore(3, "pca", 0.02, 0.1, None, 960, False)]
    s = _summary("pca", 0.03, scores, 1.0)
    assert s.detection_rate == pytest.approx(0.51)
    assert s.pre_fault_false_alarm_rate == pytest.approx(0.05)
    assert s.mean_delay_minutes == 6.0 and s.detected == 1


def test_fault_options_parse_and_name_the_option_when_wrong() -> None:
    assert parse_faults(None, False) == list(DEFAULT_FAULTS)
    assert parse_faults("6, 1,6", False) == [1, 6]
    assert parse_faults("3", True) == list(range(1, 29))
    for bad in ("0", "29", "a,b", ","):
        with pytest.raises(InvalidInput) as error:
            parse_faults(bad, False)
        assert error.value.field == "faults"
    assert parse_detectors("river, pca,river") == ["river", "pca"]
    with pytest.raises(InvalidInput) as error:
        parse_detectors("pca,forest")
    assert error.value.field == "detectors"


def test_run_spec_places_the_fault_and_keys_the_cache() -> None:
    spec = RunSpec(1, 5.0)
    assert spec.fault_sample == 160  # hour 8 at 3 minutes
    assert spec.key() == RunSpec(1, 5.0).key() != RunSpec(1, 6.0).key()
    assert RunSpec(1, 5.0, warmup_hours=10).key() != spec.key()


def test_published_table_covers_the_classic_faults_only() -> None:
    assert set(PCA_T2_DETECTION_RATE) == set(range(1, 21))
    assert all(0.0 <= rate <= 1.0 for rate in PCA_T2_DETECTION_RATE.values())
    assert published_t2(21) is None
