"""The README's first command, end to end: `millnet demo` serves a plant over its API, with
rules raising alarms and OEE per line (issue 12). Without the federation around it (its three
node processes would compete for the cores these checks are timed on):
test_demo_federation.py runs that."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from millnet.connectivity.broker import free_port
from millnet.demo_insight import IDEAL_CYCLE_S


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("transport", ["mosquitto-or-inprocess", "--in-process"])
def test_demo_streams_the_plant_into_the_api(tmp_path: Path, transport: str) -> None:
    port = free_port()
    args = [sys.executable, "-m", "millnet", "demo", "--duration", "16", "--port", str(port),
            "--data-dir", str(tmp_path / "demo"), "--no-federation"]
    if transport.startswith("--"):
        args.append(transport)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    token = identifier = national = field = None
    for line in proc.stdout:
        found = re.search(r"API (http://\S+)  token (mn_\S+)", line)
        if found:
            token = found.group(2)
        field = field or re.search(r"field OPC UA (opc\.tcp://\S+)  Modbus (\S+)", line)
        named = re.search(r"identifier (\S+)  national (\S+)", line)
        if named:
            identifier, national = named.groups()
            break
    assert token is not None, "the demo printed no token"
    assert identifier is not None and national is not None, "the demo printed no identifier"
    assert field is not None, "the demo printed no field device endpoints"
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 10
        points: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            points = _get(f"{base}/points?tenant_id=1", token)
            if len(points) >= 1020:
                break
            time.sleep(0.5)
        assert len(points) >= 1020  # 60 machines x 17 points (+ edge node metrics)
        devices = _get(f"{base}/devices?tenant_id=1", token)
        assert len([d for d in devices if re.fullmatch(r"(CNC|PRESS)-\d{3}", d["name"])]) == 60
        _field_devices_have_data(base, token)
        _rules_raise_alarms_and_lines_have_oee(base, token)
        temps = [p["series_id"] for p in points if p["name"] == "Spindle/Temperature"][:5]
        last = _get(f"{base}/telemetry/last?series={','.join(map(str, temps))}", token)
        assert last["missing"] == []
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"millnet_ingest_samples_stored_total" in metrics
        # The printed identifier resolves from the national node down the hierarchy...
        resolved = subprocess.run([sys.executable, "-m", "millnet", "id", "resolve",
                                   identifier, "--server", national], capture_output=True,
                                  text=True, timeout=60, check=False)
        assert resolved.returncode == 0, resolved.stdout + resolved.stderr
        assert "MN_DATA" in resolved.stdout and "P-200" in resolved.stdout
        # A product's identifier links to its record in the platform, which links back.
        product_link = re.search(r"(http://127\.0\.0\.1:\d+/api/v1/products/\d+)",
                                 resolved.stdout)
        assert product_link is not None, resolved.stdout
        product = _get(product_link.group(1), token)
        assert product["identifier"] == identifier and product["model"] == "P-200"
        # ...and a machine's identifier links to its live record in the platform API.
        machine = "88.100.5/EQ-SUZHOU-L1-CNC-101"
        deadline = time.monotonic() + 10
        while True:
            answer = subprocess.run([sys.executable, "-m", "millnet", "id", "resolve", machine,
                                    "--server", national], capture_output=True, text=True,
                                   timeout=60, check=False)
            if answer.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        link = re.search(r"(http://127\.0\.0\.1:\d+/api/v1/devices/\d+)", answer.stdout)
        assert link is not None, answer.stdout
        device = _get(link.group(1), token)
        assert device["name"] == "CNC-101"
        deadline = time.monotonic() + 10  # and the registry knows the device's identifier
        while device["identifier"] is None and time.monotonic() < deadline:
            time.sleep(0.3)
            device = _get(link.group(1), token)
        assert device["identifier"] == machine
    finally:
        rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, rest[-2000:]
    # The demo ends on its alarm and OEE tables; its status lines count the active alarms.
    assert re.search(r"alarms \d+ active \(", rest), rest[-2000:]
    assert "latest alarm transitions" in rest and "machine in FAULT" in rest, rest[-3000:]
    oee = re.search(r"Suzhou/Stamping/L2 .*?(\d+\.\d)%\s*│\s*$", rest, re.MULTILINE)
    assert oee is not None and 0 < float(oee.group(1)) < 150, rest[-3000:]


def _field_devices_have_data(base: str, token: str) -> None:
    """The simulated OPC UA and Modbus plants are sources of the node, up, and each of their
    devices has current values."""
    deadline = time.monotonic() + 15
    while True:
        sources = {s["name"]: s for s in _get(f"{base}/sources", token)}
        states = {n: sources[n]["health"]["state"] for n in ("opcua-plant", "modbus-plant")
                  if n in sources}
        if states == {"opcua-plant": "up", "modbus-plant": "up"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == {"opcua-plant": "up", "modbus-plant": "up"}, states
    assert {sources[n]["kind"] for n in states} == {"opcua", "modbus"}
    assert all(sources[n]["origin"] == "config" for n in states)
    devices = {d["name"]: d["id"] for d in _get(f"{base}/devices?tenant_id=1", token)}
    for name in ("CNC-1", "Pump-1", "Counter-1", "meter-1", "pump-vfd-1", "packer-1"):
        assert name in devices, name
        points = _get(f"{base}/devices/{devices[name]}/points", token)
        ids = [p["series_id"] for p in points]
        assert ids, name
        while True:
            last = _get(f"{base}/telemetry/last?series={','.join(map(str, ids))}", token)
            if len(last["missing"]) < len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(last["missing"]) < len(ids), (name, last)


def _rules_raise_alarms_and_lines_have_oee(base: str, token: str) -> None:
    """The demo typed its machines, its rules raised alarms on them (a fault, the coolant
    pump it lets fail), and the KPI tracker has an OEE for a press line this shift."""
    deadline = time.monotonic() + 15
    while True:
        devices = {d["name"]: d for d in _get(f"{base}/devices?tenant_id=1", token)}
        typed = {n: devices[n]["asset_type"] for n in ("CNC-101", "PRESS-201", "CNC-1",
                                                        "Pump-1", "packer-1") if n in devices}
        alarms = _get(f"{base}/alarms?tenant_id=1&limit=500", token)
        raised = {a["rule_name"] for a in alarms if a["activation_count"] > 0}
        line = devices["PRESS-201"]["parent_id"]
        # KPIs follow the machines' types (the ideal cycle time) once the tracker has them.
        row = _get(f"{base}/kpi?level=line&asset_id={line}&by=none", token)["rows"][0]
        if (len(typed) == 5 and None not in typed.values() and raised
                and row["kpis"]["oee"] is not None) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert typed == {"CNC-101": "cnc", "PRESS-201": "press", "CNC-1": "cnc-opcua",
                     "Pump-1": "pump", "packer-1": "packer"}, typed
    assert raised & {"machine-fault", "coolant-pressure-low"}, alarms[:5]
    inputs, kpis = row["inputs"], row["kpis"]
    assert row["machines"] >= 10 and inputs["apt_s"] > 0, row
    # Effectiveness is not capped (docs/kpi.md), and seconds in, whole parts top 100 %: a
    # press turns out a part per 1.25 s of running, and each machine's first counter step
    # (or a step after an idle spell) can hold up to one part begun before the running time
    # the tracker saw, so the ideal time of what was made is bounded by the running time plus
    # two parts per machine (a fixed ratio such as 1.5 failed when the check came early).
    press_pri = IDEAL_CYCLE_S["press"]
    assert inputs["ideal_s"] <= inputs["apt_s"] + 2 * press_pri * row["machines"], row
    assert kpis["effectiveness"] == pytest.approx(inputs["ideal_s"] / inputs["apt_s"]), row
    assert kpis["oee"] == pytest.approx(
        kpis["availability"] * kpis["effectiveness"] * kpis["quality_ratio"]), row
    assert kpis["oee"] > 0, row
    assert 0 < row["kpis"]["availability"] <= 1, row


def _demo_api_port(data_dir: Path) -> int:
    """Run `millnet demo --port 0` briefly; the port its API listened on."""
    out = subprocess.run([sys.executable, "-m", "millnet", "demo", "--duration", "1", "--port",
                          "0", "--in-process", "--no-federation", "--data-dir",
                          str(data_dir)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    found = re.search(r"API http://127\.0\.0\.1:(\d+)  token", out.stdout)
    assert found is not None, out.stdout
    return int(found.group(1))


def test_registered_urls_name_the_port_the_api_listens_on(tmp_path: Path) -> None:
    """Found by review: a demo restarted on its data with another port kept registering the
    first run's URLs (http://127.0.0.1:8080/... while the API listened elsewhere)."""
    from millnet.identifiers.core.store import IdentifierStore

    data = tmp_path / "demo"
    ports = [_demo_api_port(data), _demo_api_port(data)]
    store = IdentifierStore.open(f"sqlite:///{data / 'identifiers.sqlite'}")
    try:
        url = store.get("88.100.5/PUMP-000123", indexes=(1,))[0].data.decode()
    finally:
        store.close()
    assert url.startswith(f"http://127.0.0.1:{ports[1]}/api/v1/products/"), (ports, url)


def test_a_second_demo_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """Found by review: a second `millnet demo` while one ran printed a 60-line traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "millnet", "demo", "--duration", "1",
                              "--port", str(busy), "--in-process", "--no-federation",
                              "--data-dir",
                              str(tmp_path / "demo")],
                             capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    named = [line for line in out.stdout.splitlines() if "api.port" in line]
    assert named == [f"error api.port: cannot listen on 127.0.0.1:{busy} (TCP): "
                     "Address already in use"], out.stdout
