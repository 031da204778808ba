"""The Modbus adapter against real pymodbus servers (the simulated plant on a free port),
through a real IngestPipeline into DuckDB: values stored, exceptions as BAD, a server restart
(DOWN, then data again, the gap marked), backpressure, write with read-back."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from millnet.connectivity.adapter import FieldSink, HealthState, WriteRequest
from millnet.connectivity.modbus import ModbusAdapter, ModbusSpec
from millnet.ingest.binder import SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import Quality
from millnet.registry import Registry
from millnet.sim.modbus_server import plant_map_csv, serve_plant
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore

PREFIX = "plant1/utilities/line1"
VFD = ("plant1", "utilities", "line1", "pump-vfd-1")


@dataclass
class Rig:
    pipeline: IngestPipeline
    store: DuckDBTelemetryStore
    binder: SeriesBinder
    metrics: IngestMetrics
    runners: list[asyncio.Task[None]]

    def start_writer(self) -> None:
        self.runners.append(asyncio.create_task(self.pipeline.run()))

    def series(self, device: str, point: str) -> int:
        return self.binder.known(tuple(f"{PREFIX}/{device}".split("/")))[point]  # type: ignore[arg-type]

    def rows(self, device: str, point: str) -> list[Any]:
        return list(self.store.query_range([self.series(device, point)], 0, 2**62,
                                           limit=100_000))

    def stored(self) -> float:
        return self.metrics.registry.get_sample_value("millnet_ingest_samples_stored_total") or 0


@contextlib.asynccontextmanager
async def rig(tmp: Path, *, writer: bool = True, **pipeline: Any) -> AsyncIterator[Rig]:
    """A registry, a DuckDB store and a pipeline; its writer runs unless ``writer`` is False
    (then the test starts it with ``start_writer``)."""
    registry = Registry.open(f"sqlite:///{tmp / 'registry.sqlite'}")
    tenant = registry.create_tenant("acme", "Acme")
    store = DuckDBTelemetryStore(tmp / "t.duckdb", tmp / "archive")
    metrics = IngestMetrics()
    pipe = IngestPipeline(store, metrics, **{"max_delay": 0.02, **pipeline})
    r = Rig(pipe, store, SeriesBinder(registry, tenant.id, "acme"), metrics, [])
    if writer:
        r.start_writer()
    try:
        yield r
        await pipe.drain()
    finally:
        for runner in r.runners:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        store.close()
        registry.close()


def plant_spec(tmp: Path, port: int, **kw: Any) -> ModbusSpec:
    path = tmp / "plant.csv"
    path.write_text(plant_map_csv(PREFIX), encoding="utf-8")
    values: dict[str, Any] = {
        "name": "plant", "host": "127.0.0.1", "port": port, "register_map_csv": str(path),
        "timeout_s": 0.5, "backoff_initial_s": 0.1, "backoff_max_s": 0.4,
        "poll_groups": [{"name": "default", "interval_ms": 50},
                        {"name": "slow", "interval_ms": 200}], **kw}
    return ModbusSpec.model_validate(values)


async def until(predicate: Callable[[], bool], limit_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(adapter: ModbusAdapter) -> AsyncIterator[None]:
    task = asyncio.create_task(adapter.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_plant_values_are_stored_with_their_poll_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r, serve_plant() as plant:
            adapter = ModbusAdapter(plant_spec(tmp_path, plant.port),
                                    FieldSink("plant", r.pipeline, r.binder, r.metrics))
            start_ns = time.time_ns()
            async with running(adapter):
                await until(lambda: adapter.health().counters.get("polls", 0) >= 12,
                            what="12 polls")
                assert adapter.health().state is HealthState.UP
            await r.pipeline.drain()
            end_ns = time.time_ns()
            volts = r.rows("meter-1", "voltage_l1")
            assert len(volts) >= 5
            assert all(225 < row.value < 235 and row.quality == Quality.GOOD for row in volts)
            assert all(start_ns <= row.ts_ns <= end_ns for row in volts)
            # one poll, one timestamp: the VFD's points of a poll share it
            speeds = {row.ts_ns for row in r.rows("pump-vfd-1", "speed")}
            assert speeds == {row.ts_ns for row in r.rows("pump-vfd-1", "speed_setpoint")}
            assert {row.value for row in r.rows("pump-vfd-1", "speed_setpoint")} == {1200.0}
            assert {row.value for row in r.rows("meter-1", "power_factor")} <= {
                round(0.89 + i / 1000, 3) for i in range(61)}
            assert r.rows("packer-1", "estop_ok")[-1].value == 1.0
            assert 100 < r.rows("packer-1", "line_speed")[-1].value < 140  # word-swapped
            assert len(r.rows("meter-1", "energy")) < len(volts)  # the slow group

    asyncio.run(scenario())


def test_an_exception_answer_marks_the_points_bad(tmp_path: Path) -> None:
    """Address 300 of the VFD does not exist: its read answers ILLEGAL_ADDRESS, its points get
    NaN/BAD at the poll time, the rest keeps flowing and health names the exception."""

    async def scenario() -> None:
        async with rig(tmp_path) as r, serve_plant() as plant:
            spec = plant_spec(tmp_path, plant.port, registers=[
                {"device": f"{PREFIX}/pump-vfd-1", "point": "ghost", "table": "holding",
                 "address": 300, "unit_id": 2}])
            adapter = ModbusAdapter(spec, FieldSink("plant", r.pipeline, r.binder, r.metrics))
            async with running(adapter):
                await until(lambda: adapter.health().counters.get("polls", 0) >= 6,
                            what="polls")
                health = adapter.health()
                assert health.state is HealthState.DEGRADED
                assert "unit 2 holding 300..300: ILLEGAL_ADDRESS" in health.detail
            await r.pipeline.drain()
            ghost = r.rows("pump-vfd-1", "ghost")
            assert ghost and all((g.value is None or math.isnan(g.value))
                                 and g.quality == Quality.BAD for g in ghost)
            assert all(g.quality == Quality.GOOD for g in r.rows("pump-vfd-1", "speed"))

    asyncio.run(scenario())


def test_a_server_restart_is_down_then_recovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            async with serve_plant() as plant:
                port = plant.port
                adapter = ModbusAdapter(plant_spec(tmp_path, port),
                                        FieldSink("plant", r.pipeline, r.binder, r.metrics))
                task = asyncio.create_task(adapter.run())
                await until(lambda: adapter.health().state is HealthState.UP, what="UP")
            await until(lambda: adapter.health().state is HealthState.DOWN, what="DOWN")
            assert f"127.0.0.1:{port}" in adapter.health().detail
            down_at = time.time_ns()
            await asyncio.sleep(0.6)  # a few reconnect attempts with backoff
            polls = adapter.health().counters["polls"]
            async with serve_plant(port=port):
                await until(lambda: adapter.health().counters["polls"] > polls + 3,
                            what="polls after the restart")
                assert adapter.health().state is HealthState.UP
                assert adapter.health().counters["connects"] >= 2
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await r.pipeline.drain()
            volts = r.rows("meter-1", "voltage_l1")
            before = [v for v in volts if v.ts_ns < down_at]
            after = [v for v in volts if v.ts_ns > down_at + 500_000_000]
            assert before and after  # data resume; nothing invented in the gap
            assert all(v.quality == Quality.GOOD and not math.isnan(v.value) for v in volts)

    asyncio.run(scenario())


def test_a_full_pipeline_slows_polls_and_loses_nothing(tmp_path: Path) -> None:
    """A pipeline that holds at most 50 samples and whose writer has not started: polls wait
    for room (ticks skipped and counted); once the writer runs, every sample the adapter
    handed over is stored."""

    async def scenario() -> None:
        async with rig(tmp_path, writer=False, queue_max_samples=50, max_samples=20) as r, \
                serve_plant() as plant:
            spec = plant_spec(tmp_path, plant.port, poll_groups=[
                {"name": "default", "interval_ms": 10}, {"name": "slow", "interval_ms": 10}])
            adapter = ModbusAdapter(spec, FieldSink("plant", r.pipeline, r.binder, r.metrics))
            async with running(adapter):
                await until(lambda: adapter.health().counters.get("skipped_polls", 0) >= 5,
                            limit_s=20, what="polls skipped while the pipeline is full")
                polls = adapter.health().counters.get("polls", 0)
                await asyncio.sleep(0.3)
                assert adapter.health().counters.get("polls", 0) <= polls + 1  # it waits
                r.start_writer()
                await until(lambda: adapter.health().counters.get("polls", 0) >= polls + 20,
                            limit_s=20, what="polls again once the writer runs")
            await r.pipeline.drain()
            health = adapter.health()
            assert health.counters.get("skipped_polls", 0) > 0
            received = r.metrics.registry.get_sample_value(
                "millnet_ingest_samples_received_total")
            assert r.stored() == received and received > 0
            assert r.metrics.rejected_count("store_refused") == 0

    asyncio.run(scenario())


def test_write_and_read_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r, serve_plant() as plant:
            spec = plant_spec(tmp_path, plant.port, registers=[
                {"device": f"{PREFIX}/pump-vfd-1", "point": "ramp_time", "table": "holding",
                 "address": 104, "type": "uint16", "scale": 0.1, "unit": "s", "unit_id": 2,
                 "writable": True}])
            adapter = ModbusAdapter(spec, FieldSink("plant", r.pipeline, r.binder, r.metrics))
            async with running(adapter):
                await until(lambda: adapter.health().state is HealthState.UP, what="UP")
                assert adapter.writable(VFD, "speed_setpoint")
                assert not adapter.writable(VFD, "speed")
                done = await adapter.write(WriteRequest(VFD, "speed_setpoint", 900))
                assert (done.ok, done.read_back) == (True, 900)
                scaled = await adapter.write(WriteRequest(VFD, "ramp_time", 2.5))
                assert scaled.ok and scaled.read_back is not None
                assert abs(float(scaled.read_back) - 2.5) < 1e-9
                assert (await plant.server.async_getValues(2, 3, 104, 1)) == [25]
                stop = await adapter.write(WriteRequest(VFD, "run_command", False))
                assert (stop.ok, stop.read_back) == (True, False)
                refused = await adapter.write(WriteRequest(VFD, "speed", 1))
                assert not refused.ok and "not writable" in refused.detail
                too_big = await adapter.write(WriteRequest(VFD, "speed_setpoint", 70000))
                assert not too_big.ok and "does not fit uint16" in too_big.detail
                unknown = await adapter.write(WriteRequest(VFD, "nope", 1))
                assert not unknown.ok and "not a point" in unknown.detail
                # the VFD ramps down once the run command is off
                await until(lambda: r.rows("pump-vfd-1", "running")[-1].value == 0.0
                            if r.rows("pump-vfd-1", "running") else False, what="stopped")

    asyncio.run(scenario())
