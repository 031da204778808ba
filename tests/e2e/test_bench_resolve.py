"""`millnet bench resolve` end to end with tiny parameters: the JSON line and its keys."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_resolve_reports_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "millnet", "bench", "resolve", "--handles", "3000", "--seconds",
         "1", "--json"], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("udp_per_second", "udp_p50_ms", "udp_p99_ms", "rest_per_second",
                "rest_p99_ms", "register_per_second", "prefix_per_second", "prefix_p99_ms",
                "trivial_per_second", "trivial_before_per_second", "trivial_after_per_second",
                "udp_vs_trivial", "prefix_vs_trivial", "rest_vs_trivial", "prefix_vs_udp"):
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert result["handles"] == 3000 and result["registered"] == 3000
    assert result["udp_requests"] > 0 and result["rest_requests"] > 0
    assert result["workers"] == 2
    assert result["ok"] is True and result["failures"] == []
    assert all(result[f"{phase}_lost"] == 0 for phase in
               ("udp", "prefix", "trivial_before", "trivial_after", "rest"))
    assert result["versions"]["millnet"] and result["versions"]["python"]
