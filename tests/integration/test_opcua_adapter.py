"""The OPC UA adapter against a real asyncua server (the simulated plant) on a free port, into
a real node (registry, pipeline, DuckDB)."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from millnet.connectivity.adapter import HealthState, WriteRequest
from millnet.connectivity.opcua import OpcUaAdapter, OpcUaSpec
from millnet.connectivity.specs import parse_device
from millnet.ingest.binder import DevicePath
from millnet.model import Quality
from millnet.sim.opcua_server import free_port, serve_plant, server_certificate
from tests.integration.opcua_fixtures import Rig, eventually, rig

CNC = "Suzhou/Machining/L1/CNC-1"
PUMP = "Suzhou/Utilities/Water/Pump-1"


def _dev(path: str) -> DevicePath:
    return parse_device(path)


@asynccontextmanager
async def adapter(r: Rig, **spec: Any) -> AsyncIterator[OpcUaAdapter]:
    a = OpcUaAdapter(OpcUaSpec(name="plc", publishing_interval_ms=20, reconnect_max_s=0.5,
                               timeout_s=2, **spec), r.sink, r.data_dir)
    task = asyncio.create_task(a.run())
    try:
        yield a
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _nodes(ns: int) -> list[dict[str, Any]]:
    return [
        {"node_id": f"ns={ns};s=CNC-1.SpindleSpeed", "device": CNC, "point": "SpindleSpeed"},
        {"node_id": f"ns={ns};s=CNC-1.State", "device": CNC, "point": "State",
         "writable": True},
        {"node_id": f"ns={ns};s=Pump-1.FrequencySetpoint", "device": PUMP,
         "point": "FrequencySetpoint", "writable": True},
        {"node_id": f"ns={ns};s=CNC-1.SpindleTemperature", "device": CNC,
         "point": "SpindleTemperature", "deadband_type": "absolute", "deadband": 1.0},
    ]


def test_subscribe_quality_deadband_and_write(tmp_path: Path) -> None:
    asyncio.run(_test_subscribe_quality_deadband_and_write(tmp_path))


async def _test_subscribe_quality_deadband_and_write(tmp_path: Path) -> None:
    port = free_port()
    async with rig(tmp_path) as r, serve_plant(port=port, animate_s=None) as plant, \
            adapter(r, endpoint=plant.endpoint, nodes=_nodes(plant.namespace)) as a:
        await eventually(lambda: a.health().state is HealthState.UP, what="UP")
        ns = plant.namespace
        speed = r.series(CNC, "SpindleSpeed")
        await plant.set(f"ns={ns};s=CNC-1.SpindleSpeed", 8100.0)
        await plant.set(f"ns={ns};s=CNC-1.SpindleSpeed", 8200.0, status=0x40920000)
        await plant.set(f"ns={ns};s=CNC-1.SpindleSpeed", 8300.0, status=0x80000000)
        temp = f"ns={ns};s=CNC-1.SpindleTemperature"
        # Deadband 1.0: each step below it is filtered by the server, each above reported.
        for value in (40.5, 42.0, 42.5, 44.0):
            await plant.set(temp, value)
        await eventually(lambda: len(r.samples(speed)) >= 4, what="4 speed samples")
        got = [(s.value, s.quality) for s in r.samples(speed)]
        assert got[:3] == [(8000.0, Quality.GOOD), (8100.0, Quality.GOOD),
                           (8200.0, Quality.UNCERTAIN)]
        assert got[3][0] is None and got[3][1] is Quality.BAD  # NaN, stored as no value
        series_t = r.series(CNC, "SpindleTemperature")
        await eventually(lambda: len(r.samples(series_t)) >= 3, what="deadband samples")
        await asyncio.sleep(0.2)
        assert [s.value for s in r.samples(series_t)] == [40.0, 42.0, 44.0]
        # The server's timestamps, not the arrival time: strictly ordered, before now.
        stamps = [s.ts_ns for s in r.samples(speed)]
        assert stamps == sorted(stamps)
        # Write with read-back; the VFD setpoint is a Double on the server.
        ok = await a.write(WriteRequest(_dev(PUMP), "FrequencySetpoint", 47))
        assert ok.ok and ok.read_back == 47.0 and isinstance(ok.read_back, float)
        assert await plant.variables[f"ns={ns};s=Pump-1.FrequencySetpoint"].read_value() == 47.0
        # Marked writable here, but the server refuses: its status code is the detail.
        refused = await a.write(WriteRequest(_dev(CNC), "State", 2))
        assert not refused.ok and refused.detail in ("BadNotWritable", "BadUserAccessDenied")
        # Not marked writable: never sent.
        assert not a.writable(_dev(CNC), "SpindleSpeed")
        no = await a.write(WriteRequest(_dev(CNC), "SpindleSpeed", 1.0))
        assert not no.ok and "not a writable point" in no.detail
        bad_value = await a.write(WriteRequest(_dev(PUMP), "FrequencySetpoint", "x"))
        assert not bad_value.ok and bad_value.detail.startswith("value:")


def test_unknown_node_is_named_and_the_rest_flows(tmp_path: Path) -> None:
    asyncio.run(_test_unknown_node_is_named_and_the_rest_flows(tmp_path))


async def _test_unknown_node_is_named_and_the_rest_flows(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, serve_plant(port=free_port(), animate_s=None) as plant:
        nodes = [*_nodes(plant.namespace)[:1],
                 {"node_id": f"ns={plant.namespace};s=Nope", "device": CNC, "point": "Nope"}]
        async with adapter(r, endpoint=plant.endpoint, nodes=nodes) as a:
            await eventually(lambda: a.health().state is HealthState.DEGRADED, what="DEGRADED")
            assert "nodes[1].node_id" in a.health().detail
            assert "BadNodeIdUnknown" in a.health().detail
            speed = r.series(CNC, "SpindleSpeed")
            await eventually(lambda: len(r.samples(speed)) >= 1, what="speed")


def test_sign_and_encrypt_with_the_trusted_certificate(tmp_path: Path) -> None:
    asyncio.run(_test_sign_and_encrypt_with_the_trusted_certificate(tmp_path))


async def _test_sign_and_encrypt_with_the_trusted_certificate(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, serve_plant(port=free_port(), animate_s=None,
                                               cert_dir=tmp_path / "srv") as plant:
        assert plant.cert_path is not None
        async with adapter(r, endpoint=plant.endpoint, nodes=_nodes(plant.namespace)[:1],
                           security="sign_encrypt",
                           server_certificate=str(plant.cert_path)) as a:
            await eventually(lambda: a.health().state is HealthState.UP, what="UP")
            speed = r.series(CNC, "SpindleSpeed")
            await eventually(lambda: len(r.samples(speed)) >= 1, what="speed")
            sessions = plant.server.iserver.subscription_service.subscriptions.values()
            assert sessions  # subscribed through the secure channel
        key = r.data_dir / "pki" / "own" / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (r.data_dir / "pki" / "own" / "cert.der").is_file()
        # A server whose certificate is not the trusted one is refused.
        other, _ = server_certificate(tmp_path / "other")
        async with adapter(r, endpoint=plant.endpoint, nodes=_nodes(plant.namespace)[:1],
                           security="sign_encrypt", server_certificate=str(other)) as b:
            await eventually(lambda: b.health().state is HealthState.DOWN, what="DOWN")
            assert "not the trusted one" in b.health().detail


def test_reconnect_after_server_restart_marks_the_gap(tmp_path: Path) -> None:
    asyncio.run(_test_reconnect_after_server_restart_marks_the_gap(tmp_path))


async def _test_reconnect_after_server_restart_marks_the_gap(tmp_path: Path) -> None:
    port = free_port()
    async with rig(tmp_path) as r:
        plant_cm = serve_plant(port=port, animate_s=None)
        plant = await plant_cm.__aenter__()
        ns = plant.namespace
        async with adapter(r, endpoint=plant.endpoint, nodes=_nodes(ns)[:1]) as a:
            await eventually(lambda: a.health().state is HealthState.UP, what="UP")
            speed = r.series(CNC, "SpindleSpeed")
            await eventually(lambda: len(r.samples(speed)) >= 1, what="first sample")
            await plant_cm.__aexit__(None, None, None)  # the server goes away
            await eventually(lambda: a.health().state is HealthState.DOWN, what="DOWN")
            await eventually(lambda: any(s.quality is Quality.BAD for s in r.samples(speed)),
                             what="gap sample")
            gap = [s for s in r.samples(speed) if s.quality is Quality.BAD]
            assert len(gap) == 1 and gap[0].value is None
            async with serve_plant(port=port, animate_s=None) as again:
                await eventually(lambda: a.health().state is HealthState.UP, timeout=15,
                                 what="UP again")
                await again.set(f"ns={ns};s=CNC-1.SpindleSpeed", 9000.0)
                await eventually(lambda: any(s.value == 9000.0 for s in r.samples(speed)),
                                 what="data after the restart")
            assert a.health().counters["connects"] == 2
