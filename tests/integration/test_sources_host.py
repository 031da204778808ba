"""The adapter host (issue 11, scope 1) with real adapters: one of this test's own that reads
datagrams from a real UDP socket, and the Modbus adapter against the pymodbus simulated plant.

Sources are added and removed while the node runs, each as a supervised task: a failing one is
restarted (counted) without disturbing the others, a removed one has stopped (its socket is
closed) when ``remove`` returns.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest

from millnet.connectivity.adapter import FieldSink, Health, HealthState, Writable
from millnet.connectivity.modbus import ModbusSpec
from millnet.connectivity.specs import SourceSpec
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model import DataType, PointSpec
from millnet.node import Node, build_node, running
from millnet.sim.modbus_server import plant_register_map, serve_plant
from millnet.sources import KINDS, BuildContext, Kind, SourceHost, parse_spec
from tests.support.nodes import metric_value, node_settings, until

DEVICE = ("plant1", "utilities", "line1", "probe-1")


class UdpSpec(SourceSpec):
    kind: Literal["udp"] = "udp"
    port: int
    points: list[str]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.queue.put_nowait(data)


class UdpAdapter:
    """Readings ``point=value`` from datagrams on a local UDP port."""

    kind = "udp"

    def __init__(self, spec: UdpSpec, sink: FieldSink) -> None:
        self.name = spec.name
        self.spec = spec
        self._sink = sink
        self._health = Health()

    def health(self) -> Health:
        return self._health

    async def run(self) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(queue), local_addr=("127.0.0.1", self.spec.port))
        except OSError as exc:
            self._health.enter(HealthState.DOWN, str(exc))
            raise
        try:
            ids = await self._sink.bind(DEVICE, [PointSpec(p, DataType.DOUBLE)
                                                 for p in self.spec.points])
            self._health.enter(HealthState.UP)
            while True:
                await self._sink.capacity()
                point, _, value = (await queue.get()).decode().partition("=")
                self._sink.emit(ids[point], time.time_ns(), float(value))
                self._sink.done(1)
                self._health.last_data_at = time.time()
                self._health.count("datagrams")
        finally:
            transport.close()
            self._health.enter(HealthState.STOPPED)


def _build_udp(spec: UdpSpec, sink: FieldSink, ctx: BuildContext) -> UdpAdapter:
    return UdpAdapter(spec, sink)


TEST_KINDS = {**KINDS, "udp": Kind(UdpSpec, _build_udp)}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(port: int, text: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(text.encode(), ("127.0.0.1", port))


@asynccontextmanager
async def hosted(tmp_path: Path) -> AsyncIterator[tuple[Node, SourceHost]]:
    node = build_node(node_settings(tmp_path, 1, mqtt={"enabled": False}))
    async with running(node, api=False):
        host = SourceHost(node.pipeline, node.metrics, node.host._binders, node.metrics.restarts,
                          default_tenant=node.tenant_id, data_dir=tmp_path, kinds=TEST_KINDS,
                          first_backoff=0.05)
        async with host:
            yield node, host


def last_value(node: Node, point: str) -> float | None:
    points = {p.name: p.series_id for p in node.registry.list_points(node.tenant_id)}
    if point not in points:
        return None
    found = node.store.last_values([points[point]]).get(points[point])
    return None if found is None or found.value is None else float(found.value)


def test_sources_are_added_and_removed_while_the_node_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hosted(tmp_path) as (node, host):
            port = free_udp_port()
            host.add(parse_spec({"kind": "udp", "name": "probe", "port": port,
                                 "points": ["temp"]}, TEST_KINDS))
            await until(lambda: host.get("probe").health.state is HealthState.UP)
            send(port, "temp=21.5")
            await until(lambda: last_value(node, "temp") == 21.5, what="the datagram stored")
            info = host.get("probe")
            assert (info.kind, info.origin, info.enabled) == ("udp", "config", True)
            assert info.health.counters == {"datagrams": 1}
            assert info.health.last_data_at is not None
            assert info.spec == {"kind": "udp", "name": "probe", "port": port,
                                 "points": ["temp"], "enabled": True}
            with pytest.raises(Conflict):
                host.add(UdpSpec(name="probe", port=port, points=["x"]))

            await host.remove("probe")
            assert [i.name for i in host.list()] == []
            # Stopped and awaited: its socket is closed, the port can be bound again.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
            with pytest.raises(NotFound):
                await host.remove("probe")

            host.add(UdpSpec(name="probe", port=port, points=["temp"]))
            await until(lambda: host.get("probe").health.state is HealthState.UP)
            send(port, "temp=22.5")
            await until(lambda: last_value(node, "temp") == 22.5, what="the re-added source")

    asyncio.run(scenario())


def test_a_failing_source_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hosted(tmp_path) as (node, host):
            busy, good = free_udp_port(), free_udp_port()
            squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            squatter.bind(("127.0.0.1", busy))
            host.add(UdpSpec(name="blocked", port=busy, points=["a"]))
            host.add(UdpSpec(name="fine", port=good, points=["b"]))
            await until(lambda: metric_value(node, "millnet_task_restarts_total",
                                             {"task": "blocked"}) >= 2, what="restarts")
            assert host.get("blocked").health.state is HealthState.DOWN
            assert "in use" in host.get("blocked").health.detail
            send(good, "b=1")
            await until(lambda: last_value(node, "b") == 1.0, what="the other source's data")
            squatter.close()  # the port is free: the next restart comes up
            await until(lambda: host.get("blocked").health.state is HealthState.UP, 5.0)
            send(busy, "a=7")
            await until(lambda: last_value(node, "a") == 7.0, what="data after the restart")

    asyncio.run(scenario())


def test_disabled_sources_are_listed_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hosted(tmp_path) as (_, host):
            port = free_udp_port()
            host.add(UdpSpec(name="spare", port=port, points=["a"], enabled=False))
            info = host.get("spare")
            assert (info.enabled, info.health.state) == (False, HealthState.STOPPED)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))  # nothing listens

    asyncio.run(scenario())


def test_find_writer_names_the_modbus_adapter_of_a_writable_point(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_plant() as plant, hosted(tmp_path) as (node, host):
            spec = ModbusSpec.model_validate({
                "name": "plc", "host": "127.0.0.1", "port": plant.port,
                "poll_groups": [{"name": "default", "interval_ms": 100},
                                {"name": "slow", "interval_ms": 500}],
                "registers": plant_register_map()})
            host.add(spec)
            vfd = ("plant1", "utilities", "line1", "pump-vfd-1")
            writer = host.find_writer(vfd, "speed_setpoint")
            assert isinstance(writer, Writable)
            assert host.find_writer(vfd, "speed") is None  # not writable
            assert host.find_writer(DEVICE, "speed_setpoint") is None
            await until(lambda: last_value(node, "voltage_l1") is not None, what="a poll")
            assert host.get("plc").health.state is HealthState.UP
            await host.remove("plc")
            assert host.find_writer(vfd, "speed_setpoint") is None

    asyncio.run(scenario())


def test_specs_are_checked_with_the_field_named() -> None:
    with pytest.raises(InvalidInput) as bad:
        parse_spec({"kind": "modbus", "name": "m", "host": "h",
                    "registers": [{"device": "a/b/c/d", "point": "p", "table": "holding",
                                   "address": -1}]})
    assert bad.value.field == "registers[0].address"
    with pytest.raises(InvalidInput) as unknown:
        parse_spec({"kind": "telnet", "name": "t"})
    assert unknown.value.field == "kind"
    with pytest.raises(InvalidInput) as name:
        parse_spec({"kind": "opcua", "name": "no spaces", "endpoint": "opc.tcp://h:4840"})
    assert name.value.field == "name"
