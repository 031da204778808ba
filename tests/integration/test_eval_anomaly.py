"""``millnet eval anomaly`` end to end on a tiny subset: real tep-studio runs (short), the
three detectors and the PCA T² baseline, through the CLI with ``--json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from millnet.cli_eval import app


def run(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    result = CliRunner().invoke(app, [
        "anomaly", "--faults", "1,6", "--hours", "4", "--warmup", "1", "--workers", "1",
        "--cache-dir", str(tmp_path), "--json", *extra])
    lines = result.stdout.strip().splitlines()
    assert lines, result.output
    return result.exit_code, json.loads(lines[-1]), time.perf_counter() - started


def test_eval_anomaly_ends_with_one_json_line_of_the_figures(tmp_path: Path) -> None:
    code, figures, seconds = run(tmp_path)
    assert seconds < 60
    assert code == (0 if figures["ok"] else 1)
    for key in ("detection_rate", "false_alarm_rate"):
        value = figures[key]
        assert isinstance(value, float) and 0.0 <= value <= 1.0
    detectors = figures["detectors"]
    assert isinstance(detectors, dict)
    assert set(detectors) == {"robust", "pca", "river", "pca_t2"}
    assert figures["best_detector"] in {"robust", "pca", "river"}
    faults = figures["faults"]
    assert isinstance(faults, dict) and set(faults) == {"1", "6"}
    # IDV(1), a step in the A/C feed ratio, is caught by every detector within the hour
    for name in detectors:
        assert faults["1"][name]["detection_rate"] > 0.5
        assert faults["1"][name]["delay_minutes"] is not None
    assert faults["1"]["published_pca_t2"] == 0.992
    assert set(figures["versions"]) == {"numpy", "scipy", "river", "tep-studio"}
    assert list(tmp_path.glob("run-*.npz"))  # the runs were cached


def test_a_second_run_reads_the_cache(tmp_path: Path) -> None:
    run(tmp_path, "--detectors", "pca")
    _, figures, _ = run(tmp_path, "--detectors", "pca")
    assert figures["generation_seconds"] < 5  # nothing simulated again
    assert set(figures["detectors"]) == {"pca", "pca_t2"}


def test_a_bad_fault_list_is_refused_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["anomaly", "--faults", "1,99", "--cache-dir",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert "faults" in result.output
