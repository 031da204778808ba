"""`millnet bench connectivity` end to end, small: every phase runs against its real peers (an
asyncua server and a pymodbus server in their own processes, a private Mosquitto), stores
everything it moved and ends with one JSON line naming the figures (about 15 s)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from millnet.connectivity.broker import find_mosquitto


@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")
def test_a_short_run_moves_every_point_and_reports_each_phase() -> None:
    out = subprocess.run([sys.executable, "-m", "millnet.bench.connectivity", "--seconds", "1",
                          "--json"], capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and result["ok"], (result["failures"], out.stderr[-2000:])
    assert result["lost_points"] == 0
    for key in ("opcua_notifications_per_second", "modbus_points_per_second",
                "replay_points_per_second"):
        assert result[key] > 0, key
    opcua, modbus, replay = result["opcua"], result["modbus"], result["replay"]
    assert opcua["stored"] == opcua["expected"] and opcua["duplicates"] == 0
    assert modbus["stored"] == modbus["polled"] > 0
    assert replay["lost"] == 0 and replay["stored"] >= replay["points"]
    assert {"asyncua", "pymodbus", "duckdb"} <= result["versions"].keys()
