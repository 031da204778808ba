"""Browse and import against the simulated plant (a real asyncua server on a free port)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from typer.testing import CliRunner

from millnet.cli_opcua import app
from millnet.connectivity.adapter import HealthState
from millnet.connectivity.opcua import ImportFolder, OpcUaAdapter, OpcUaSpec
from millnet.connectivity.opcua.browse import browse
from millnet.model import DataType
from millnet.sim.opcua_server import free_port, serve_plant
from tests.integration.opcua_fixtures import eventually, rig


def test_browse_lists_folders_and_variables() -> None:
    async def scenario() -> None:
        async with serve_plant(port=free_port(), animate_s=None) as plant:
            entries = {"/".join(e.path): e for e in await browse(plant.endpoint)}
        assert entries["2:Suzhou/2:Utilities"].node_class == "object"
        setpoint = entries["2:Suzhou/2:Utilities/2:Water/2:Pump-1/2:FrequencySetpoint"]
        assert setpoint.node_class == "variable" and setpoint.writable
        assert setpoint.datatype is DataType.DOUBLE and setpoint.unit == "Hz"
        assert setpoint.description == "Pump-1 FrequencySetpoint"
        assert setpoint.node_id == f"ns={plant.namespace};s=Pump-1.FrequencySetpoint"
        state = entries["2:Suzhou/2:Machining/2:L1/2:CNC-1/2:State"]
        assert state.datatype is DataType.INT32 and not state.writable
        # Properties describe their variable; they are not listed as variables.
        assert not any(p.endswith("EngineeringUnits") for p in entries)

    asyncio.run(scenario())


def test_import_by_path_rule_and_by_device_rule(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r, serve_plant(port=free_port(), animate_s=0.05) as plant:
            spec = OpcUaSpec(name="plant", endpoint=plant.endpoint, publishing_interval_ms=20,
                             import_folders=[
                                 ImportFolder(browse_path="Suzhou/Machining"),
                                 ImportFolder(browse_path="2:Suzhou/Utilities/Water/Pump-1",
                                              device="Wuxi/Energy/Boiler/P-7", writable=True),
                                 ImportFolder(browse_path="Suzhou/Nowhere"),
                             ])
            adapter = OpcUaAdapter(spec, r.sink, r.data_dir)
            task = asyncio.create_task(adapter.run())
            try:
                await eventually(lambda: adapter.health().state is HealthState.DOWN
                                 and "Nowhere" in adapter.health().detail, what="refusal")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            # Without the missing folder the import goes through.
            good = spec.model_copy(update={"import_folders": spec.import_folders[:2]})
            adapter = OpcUaAdapter(good, r.sink, r.data_dir)
            task = asyncio.create_task(adapter.run())
            try:
                await eventually(lambda: adapter.health().state is HealthState.UP, what="UP")
                cnc = r.points("Suzhou/Machining/L1/CNC-1")
                assert set(cnc) == {"SpindleSpeed", "SpindleTemperature", "State",
                                    "PartCounter"}
                assert cnc["SpindleSpeed"].unit == "rpm"
                assert cnc["PartCounter"].datatype is DataType.UINT32
                pump = r.points("Wuxi/Energy/Boiler/P-7")
                assert set(pump) == {"FrequencySetpoint", "MotorCurrent", "DischargePressure"}
                assert adapter.writable(("Wuxi", "Energy", "Boiler", "P-7"), "FrequencySetpoint")
                sid = cnc["SpindleSpeed"].series_id
                await eventually(lambda: len(r.samples(sid)) >= 3, what="imported data")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def _plant_in_thread(port: int) -> Iterator[str]:
    ready = threading.Event()
    endpoint: list[str] = []
    stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        done = asyncio.Event()
        async with serve_plant(port=port, animate_s=None) as plant:
            endpoint.append(plant.endpoint)
            stop.append((asyncio.get_running_loop(), done))
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(20)
    try:
        yield endpoint[0]
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(10)


def test_cli_browse_json_and_errors() -> None:
    for endpoint in _plant_in_thread(free_port()):
        result = CliRunner().invoke(app, ["browse", endpoint, "--json", "--depth", "5"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.output.splitlines()]
        paths = {row["path"]: row for row in rows}
        assert paths["2:Suzhou/2:Packaging/2:L2/2:Counter-1/2:Count"]["datatype"] == "uint32"
        table = CliRunner().invoke(app, ["browse", endpoint, "--depth", "2"])
        assert table.exit_code == 0 and "Suzhou" in table.output
    refused = CliRunner().invoke(app, ["browse", f"opc.tcp://127.0.0.1:{free_port()}",
                                       "--timeout", "1"])
    assert refused.exit_code == 1
    wrong = CliRunner().invoke(app, ["browse", "http://example.invalid"])
    assert wrong.exit_code == 2 and "opc.tcp://" in wrong.output
