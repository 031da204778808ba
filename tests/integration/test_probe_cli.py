"""``millnet probe`` as a process: a generated capture in, events on stderr, one JSON line out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu.register_message import WriteMultipleRegistersRequest

from tests.support import pcapgen as g


def millnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "millnet", "probe", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def plant_capture(path: Path, pcapng: bool = False) -> Path:
    frames: list[g.Frame] = []
    scada = g.Conversation("10.0.0.5", "10.0.0.10", 502, frames=frames).handshake()
    scada.send(g.modbus(ReadDeviceInformationResponse(
        read_code=1, information={0: b"Acme", 2: b"4.2.1", 5: b"PLC-9000"})), from_client=False)
    scada.send(g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1])), size=5)
    s7 = g.Conversation("10.0.0.66", "10.0.0.10", 102, frames=frames, ts=1_700_000_100.0)
    s7.handshake().send(g.s7_connect()).send(g.s7_job(0x29))
    return g.write_pcap(path, frames, pcapng=pcapng)


def last_json(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return document


def test_read_a_capture_with_json(tmp_path: Path) -> None:
    result = millnet("--read", str(plant_capture(tmp_path / "plant.pcapng", pcapng=True)),
                     "--json", "--learn", "10")
    assert result.returncode == 0, result.stderr
    document = last_json(result.stdout)
    plc = next(h for h in document["inventory"] if h["address"] == "10.0.0.10")
    assert plc["services"] == ["tcp/102", "tcp/502"]
    assert (plc["vendor"], plc["model"], plc["firmware"]) == ("Acme", "PLC-9000", "4.2.1")
    assert "plc" in plc["roles"] and "modbus_server" in plc["roles"]
    assert document["stats"]["events"] == {"field.plc_stop": 1}
    assert document["stats"]["pdus"] == {"modbus": 2, "s7comm": 2}
    assert "field.plc_stop" in result.stderr and "10.0.0.66" in result.stderr


def test_baseline_round_trip(tmp_path: Path) -> None:
    capture = plant_capture(tmp_path / "plant.pcap")
    baseline = tmp_path / "baseline.json"
    first = millnet("--read", str(capture), "--json", "--save-baseline", str(baseline))
    assert first.returncode == 0, first.stderr
    writers = json.loads(baseline.read_text())["writers"]
    assert {"source": "10.0.0.5", "protocol": "modbus", "function": "fc16"} in writers
    second = millnet("--read", str(capture), "--json", "--baseline", str(baseline))
    assert "field.write_unusual" not in last_json(second.stdout)["stats"]["events"]
    empty = tmp_path / "empty.json"
    empty.write_text('{"writers": []}')
    third = millnet("--read", str(capture), "--json", "--baseline", str(empty))
    assert last_json(third.stdout)["stats"]["events"]["field.write_unusual"] == 1


def test_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    result = millnet("--read", str(text))
    assert result.returncode == 1 and "not a pcap or pcapng" in result.stderr
    both = millnet("--read", str(text), "--interface", "lo")
    assert both.returncode == 2 and "exactly one" in both.stderr
    bad_port = millnet("--read", str(text), "--port", "5020=bacnet")
    assert bad_port.returncode == 1 and "no dissector for bacnet" in bad_port.stderr


def test_a_truncated_capture_is_read_up_to_the_damage(tmp_path: Path) -> None:
    capture = plant_capture(tmp_path / "plant.pcap")
    data = capture.read_bytes()
    capture.write_bytes(data[:-30])
    result = millnet("--read", str(capture), "--json")
    assert result.returncode == 0, result.stderr
    stats = last_json(result.stdout)["stats"]
    assert stats["packets"] > 0


def test_live_capture_without_cap_net_raw_names_the_privilege() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the CLI without CAP_NET_RAW")
    result = subprocess.run(
        [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
         "--inh-caps=-all", "--bounding-set=-all",
         sys.executable, "-m", "millnet", "probe", "--interface", "lo", "--count", "1"],
        capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert result.returncode == 1, result.stderr
    assert "CAP_NET_RAW" in result.stderr
