"""Sensors and hooks that feed the monitor, with real parts: ``millnet probe --report-to`` as a
process posting to a served API; malformed native Handle requests over real UDP and TCP
sockets; a node built from its settings counting Sparkplug messages per device for the rate
detector and listening for anomaly-rule alarms."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from millnet.api import create_app
from millnet.config import load_settings
from millnet.identifiers.wire.transport import NativeServer, Peer
from millnet.ingest.metrics import IngestMetrics
from millnet.model.security import SecurityEvent, Severity
from millnet.node import build_node
from millnet.protocols.handle import Message
from millnet.registry import Registry
from millnet.security import EventQuery, SecurityMonitor, SecuritySettings, build_security
from millnet.security.anomalies import AnomalyAlarms
from millnet.sensor_report import NodeReporter
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from tests.integration.test_probe_cli import plant_capture
from tests.support.webserver import ThreadedServer


class Served:
    def __init__(self, url: str, monitor: SecurityMonitor, admin: str) -> None:
        self.url, self.monitor, self.admin = url, monitor, admin


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("sensors")
    url = f"sqlite:///{tmp / 'node.sqlite'}"
    registry = Registry.open(url)
    store = DuckDBTelemetryStore(tmp / "telemetry.duckdb", tmp / "archive")
    monitor = build_security(SecuritySettings(flush_s=0), url)
    try:
        app = create_app(registry, store, IngestMetrics(), node_name="sensor-node",
                         role="enterprise", security=monitor)
        with ThreadedServer(app) as server:
            yield Served(server.url, monitor, registry.create_token(None, "admin", "probe")[0])
    finally:
        monitor.store.close()
        store.close()
        registry.close()


def test_the_probe_reports_its_events_and_hosts_to_the_node(served: Served,
                                                            tmp_path: Path) -> None:
    capture = plant_capture(tmp_path / "plant.pcap")
    done = subprocess.run(
        [sys.executable, "-m", "millnet", "probe", "--read", str(capture), "--learn", "0",
         "--report-to", served.url, "--token", served.admin, "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "reported to the node:" in done.stderr and "refused" not in done.stderr
    asyncio.run(served.monitor.flush())
    events, _ = served.monitor.store.query(EventQuery(kind_prefix="field."))
    assert events, "the probe's field events did not reach the node"
    assert all(str(e.detail["reported_by"]).startswith("token:") for e in events)
    hosts = {h.address: h for h in served.monitor.hosts.current()}
    assert hosts["10.0.0.10"].vendor == "Acme" and hosts["10.0.0.10"].model == "PLC-9000"


def test_an_unreachable_node_never_blocks_the_sensor_and_a_refusal_is_counted(
    served: Served,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    reporter = NodeReporter(dead, "t", interval_s=0.05, max_queue=3).start()
    started = time.monotonic()
    for i in range(10):
        reporter.submit(SecurityEvent("network.scan", Severity.LOW, f"scan {i}"))
    assert time.monotonic() - started < 0.5  # never waits for the network
    time.sleep(0.3)
    reporter.close(timeout=8)
    assert reporter.stats.dropped_full == 7 and reporter.stats.failures >= 1
    assert reporter.stats.sent == 0
    refused = NodeReporter(served.url, "mn_bad_token", interval_s=0.05).start()
    refused.submit(SecurityEvent("network.scan", Severity.LOW, "scan"))
    refused.close()
    assert refused.stats.refused == 1 and "401" in refused.stats.last_error


def echo(msg: Message, peer: Peer) -> list[Message]:
    return []


def test_malformed_native_requests_are_violations_of_their_source() -> None:
    seen: list[tuple[str, str, str]] = []

    async def scenario() -> None:
        both = asyncio.Event()

        def violation(kind: str, source: str, detail: str) -> None:
            seen.append((kind, source, detail))
            if len(seen) >= 2:
                both.set()

        async with NativeServer(echo, udp_port=0, tcp_port=0,
                                on_violation=violation) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"\x00" * 7, ("127.0.0.1", server.udp_port))  # not an envelope
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
            bad = bytearray(20)
            bad[0:2] = b"\x09\x09"  # a version no one speaks
            bad[16:20] = (4).to_bytes(4, "big")
            writer.write(bytes(bad) + b"\x00" * 4)
            await writer.drain()
            async with asyncio.timeout(5):
                await both.wait()
            writer.close()

    asyncio.run(scenario())
    assert sorted(v[2][:4] for v in seen) == ["tcp:", "udp:"]
    assert all(kind == "malformed" and source == "127.0.0.1" for kind, source, _ in seen)


def test_a_node_counts_sparkplug_messages_per_device_and_listens_for_anomaly_alarms(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(tmp_path / "node"), "name": "ent-1"},
        "mqtt": {"enabled": False, "sparkplug": True, "tenant": "acme"}})
    node = build_node(settings)
    try:
        assert node.sparkplug is not None and node.monitoring is not None
        assert node.insight is not None
        assert any(isinstance(fn, AnomalyAlarms) for fn in node.insight.listeners)
        (take,) = node.monitoring.rate_feeds

        async def publish(topic: str, payload: bytes) -> None:
            return None

        async def messages() -> None:
            for topic in ["spBv1.0/plant/NDATA/edge1"] * 3 + [
                    "spBv1.0/plant/DDATA/edge1/press", "spBv1.0/plant/NBIRTH/edge1"]:
                await node.sparkplug.handle(topic, b"not protobuf", publish)  # type: ignore[union-attr]

        asyncio.run(messages())
        tenant, counts = take()
        assert tenant == node.tenant_id
        assert counts == {"plant/edge1": 4, "plant/edge1/press": 1}
        assert take() == (node.tenant_id, {})  # counting starts again
    finally:
        node.close()
