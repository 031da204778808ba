"""kill -9 of a node (platform and identifier service) under QoS 1 JSON load loses no
acknowledged message.

The node acknowledges a QoS 1 message only after its samples are committed, and keeps a
persistent MQTT session: whatever it had not acknowledged when killed is redelivered by the
broker after restart. Delivery is at least once, so the check counts distinct (series, ts).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import duckdb

from millnet.connectivity.broker import free_port
from tests.servers import Mosquitto
from tests.support.mqttpeer import Peer

N = 6000  # published while the node runs and is killed
LATER = 2000  # published while the node is down (the broker keeps them for its session)
T0 = 1_767_225_600_000


def _start_node(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "millnet", "node", "--config", str(config)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def _metric(api_port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics", timeout=1) as r:
            body = r.read().decode()
    except OSError:
        return -1.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_loses_no_acknowledged_message(mosquitto: Mosquitto, tmp_path: Path) -> None:
    api_port, native = free_port(), free_port()
    data = tmp_path / "data"
    config = tmp_path / "node.toml"
    secret = tmp_path / "admin.secret"
    secret.write_text("s3cret-admin-key\n")
    config.write_text(  # the whole node: platform and identifier service in one process
        f'[node]\ndata_dir = "{data}"\n'
        f'[mqtt]\nport = {mosquitto.port}\nclient_id = "crash-test"\nsparkplug = false\n'
        f"[ingest]\nbatch_max_delay_ms = 50\n"
        f"[api]\nport = {api_port}\n"
        f'[identifiers]\nenabled = true\nprefix = "88.100.5"\nadmin_secret_file = "{secret}"\n'
        f"udp_port = {native}\ntcp_port = {native}\nhttp_port = 0\n"
    )
    log = tmp_path / "node.log"
    node = _start_node(config, log)
    connected = 'millnet_source_connected{source="mqtt-json"}'
    _wait(lambda: _metric(api_port, connected) == 1.0, 30, "node connected")

    peer = Peer(mosquitto.port, "publisher")
    published = threading.Event()

    def publish(first: int, count: int) -> None:
        info = None
        for i in range(first, first + count):
            body = {"point": f"p{i % 10}", "value": float(i), "ts": T0 + i}
            info = peer.client.publish("millnet/S/A/L/D", json.dumps(body).encode(), qos=1)
        assert info is not None
        info.wait_for_publish(30)  # the broker has them all (in order, QoS 1)
        published.set()

    thread = threading.Thread(target=publish, args=(0, N))
    thread.start()
    _wait(lambda: _metric(api_port, "millnet_ingest_samples_stored_total") >= N // 10, 30,
          "some samples stored")
    node.send_signal(signal.SIGKILL)
    node.wait(10)
    thread.join(30)
    assert published.is_set()
    publish(N, LATER)
    peer.close()

    node = _start_node(config, log)
    _wait(lambda: _metric(api_port, connected) == 1.0, 30, "node reconnected")
    # After the restart the node receives what the broker kept for its session; wait until
    # the stored count has settled.
    stored = "millnet_ingest_samples_stored_total"
    try:
        _wait(lambda: _metric(api_port, stored) > 0, 30, "redelivery")
    except AssertionError:
        print(urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics").read().decode())
        raise
    previous = -1.0
    while (now := _metric(api_port, stored)) != previous:
        previous = now
        time.sleep(1.0)
    node.send_signal(signal.SIGTERM)
    assert node.wait(30) == 0, log.read_text()[-2000:]

    # The identifier service of the killed node came back on its store too.
    ids = sqlite3.connect(data / "identifiers.sqlite")
    assert ids.execute("SELECT count(*) FROM handles").fetchone() == (2,)
    ids.close()
    con = duckdb.connect(str(data / "telemetry.duckdb"), read_only=True)
    distinct = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM samples)").fetchone()
    assert distinct is not None
    assert distinct[0] == N + LATER, log.read_text()[-2000:]
