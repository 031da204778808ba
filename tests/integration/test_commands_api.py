"""Write-back commands through a real node's API (uvicorn): the simulated Modbus plant (pymodbus)
and the simulated OPC UA plant (asyncua) as sources of the node's TOML, writes confirmed by
read-back, every refusal (viewer, another tenant, not writable, a value of the wrong type)
answered and audited, the audit listed with old and new values, and the CLI against the node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from millnet.cli_commands import app as command_cli
from millnet.cli_commands import parse_value
from millnet.sim.modbus_server import serve_plant as serve_modbus
from millnet.sim.opcua_server import free_port
from millnet.sim.opcua_server import serve_plant as serve_opcua
from tests.integration.test_sources_api import bearer, node_api
from tests.support.nodes import until

VFD = "plant1/utilities/line1/pump-vfd-1"
PUMP = "Suzhou/Utilities/Water/Pump-1"


def write_config(tmp_path: Path, modbus_port: int, opcua_endpoint: str, ns: int) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"""\
[node]
data_dir = "{tmp_path / 'node'}"
[mqtt]
enabled = false
[ingest]
batch_max_delay_ms = 20
[api]
port = 0

[[sources]]
kind = "modbus"
name = "gateway"
host = "127.0.0.1"
port = {modbus_port}
poll_groups = [{{name = "default", interval_ms = 100}}]
[[sources.registers]]
device = "{VFD}"
point = "speed_setpoint"
table = "holding"
address = 100
type = "uint16"
unit_id = 2
writable = true
[[sources.registers]]
device = "{VFD}"
point = "speed"
table = "holding"
address = 101
type = "uint16"
unit_id = 2

[[sources]]
kind = "opcua"
name = "plc"
endpoint = "{opcua_endpoint}"
publishing_interval_ms = 20
[[sources.nodes]]
node_id = "ns={ns};s=Pump-1.FrequencySetpoint"
device = "{PUMP}"
point = "FrequencySetpoint"
writable = true
""")
    return path


def command(device: str, point: str, value: Any, **more: Any) -> dict[str, Any]:
    return {"device": device, "point": point, "value": value, **more}


def test_writes_confirmed_refusals_audited_and_the_cli(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    async with serve_modbus() as modbus, \
            serve_opcua(port=free_port(), animate_s=None) as opcua:
        config = write_config(tmp_path, modbus.port, opcua.endpoint, opcua.namespace)
        async with node_api(config) as (node, api):
            reg = node.registry
            operator = bearer(reg.create_token(node.tenant_id, "operator", "olga")[0])
            viewer_token = reg.create_token(node.tenant_id, "viewer", "victor")[0]
            viewer = bearer(viewer_token)
            admin = bearer(reg.create_token(node.tenant_id, "admin", "ada")[0])
            other = reg.create_tenant("other")
            stranger = bearer(reg.create_token(other.id, "operator", "oscar")[0])

            def stored(point: str) -> bool:
                ids = {p.name: p.series_id for p in reg.list_points(node.tenant_id)}
                return point in ids and ids[point] in node.store.last_values([ids[point]])

            await until(lambda: stored("speed_setpoint") and stored("FrequencySetpoint"),
                        what="first values of both sources stored")

            # Modbus: write, read back, confirmed; the old value is the last one stored.
            answer = await api.post("/commands", json=command(VFD, "speed_setpoint", 1234),
                                    headers=operator)
            assert answer.status_code == 200, answer.text
            modbus_cmd = answer.json()
            assert modbus_cmd["result"] == "confirmed", modbus_cmd
            assert modbus_cmd["source"] == "gateway"
            assert modbus_cmd["old_value"] is not None and modbus_cmd["new_value"] == 1234
            assert modbus_cmd["token_name"] == "olga" and modbus_cmd["confirmed_at"]

            # OPC UA: write with read-back.
            answer = await api.post("/commands", json=command(PUMP, "FrequencySetpoint", 47.5),
                                    headers=operator)
            opcua_cmd = answer.json()
            assert opcua_cmd["result"] == "confirmed", opcua_cmd
            assert opcua_cmd["old_value"] == 40.0 and opcua_cmd["new_value"] == 47.5
            assert await opcua.variables[
                f"ns={opcua.namespace};s=Pump-1.FrequencySetpoint"].read_value() == 47.5

            # Refusals, each answered and audited.
            denied = await api.post("/commands", json=command(VFD, "speed_setpoint", 1),
                                    headers=viewer)
            assert denied.status_code == 403
            foreign = await api.post("/commands", json=command(VFD, "speed_setpoint", 2),
                                     headers=stranger)
            assert foreign.status_code == 404
            read_only = await api.post("/commands", json=command(VFD, "speed", 3),
                                       headers=operator)
            assert read_only.status_code == 409, read_only.text
            for bad in ("fast", 1500.5, True, -1, 70000):
                typed = await api.post("/commands", json=command(VFD, "speed_setpoint", bad),
                                       headers=operator)
                assert typed.status_code == 400, (bad, typed.text)
                assert typed.json()["field"] == "value"
            missing = await api.post("/commands", json=command(VFD, "nope", 1),
                                     headers=operator)
            assert missing.status_code == 404
            shape = await api.post("/commands", json=command("a/b", "x", 1), headers=operator)
            assert shape.status_code == 422

            # The audit: everything above but the malformed request, newest first.
            audit = (await api.get("/commands", headers=admin)).json()
            results = [(c["point"], c["result"], c["token_name"]) for c in reversed(audit)]
            assert results == [
                ("speed_setpoint", "confirmed", "olga"), ("FrequencySetpoint", "confirmed", "olga"),
                ("speed_setpoint", "refused", "victor"), ("speed", "refused", "olga"),
                *[("speed_setpoint", "refused", "olga")] * 5, ("nope", "refused", "olga")]
            assert all(c["tenant_id"] == node.tenant_id for c in audit)
            assert [c["new_value"] for c in reversed(audit)][4:9] == [
                "fast", 1500.5, True, -1, 70000]
            refused = [c for c in audit if c["result"] == "refused"]
            assert all(c["finished_at"] and c["detail"] for c in refused)
            assert any("operator or admin" in c["detail"] for c in refused)
            # Another tenant's token sees only its own refused attempt.
            theirs = (await api.get("/commands", headers=stranger)).json()
            assert [(c["tenant_id"], c["result"], c["token_name"]) for c in theirs] == [
                (other.id, "refused", "oscar")]
            assert (await api.get(f"/commands/{modbus_cmd['id']}",
                                  headers=stranger)).status_code == 404
            one = (await api.get(f"/commands/{opcua_cmd['id']}", headers=viewer)).json()
            assert one == opcua_cmd
            # Filters and paging.
            page = (await api.get("/commands", params={"result": "refused", "limit": 3},
                                  headers=admin)).json()
            assert len(page) == 3 and all(c["result"] == "refused" for c in page)
            rest = (await api.get("/commands", params={"result": "refused",
                                                       "before": page[-1]["id"]},
                                  headers=admin)).json()
            assert len(page) + len(rest) == len(refused)
            assert {c["point"] for c in (await api.get(
                "/commands", params={"device": PUMP}, headers=viewer)).json()} == {
                "FrequencySetpoint"}
            assert len((await api.get("/commands", params={"user": "victor"},
                                      headers=admin)).json()) == 1

            # The CLI against the running node (it blocks: run it in a thread).
            url = f"http://127.0.0.1:{node.api_port}"
            op_token = operator["Authorization"].removeprefix("Bearer ")
            runner = CliRunner()
            done = await asyncio.to_thread(
                runner.invoke, command_cli,
                ["write", VFD, "speed_setpoint", "777", "--url", url, "--json"],
                env={"MILLNET_TOKEN": op_token})
            assert done.exit_code == 0, done.output
            assert json.loads(done.output)["result"] == "confirmed"
            refused_cli = await asyncio.to_thread(
                runner.invoke, command_cli,
                ["write", VFD, "speed_setpoint", "777", "--url", url, "--token", viewer_token])
            assert refused_cli.exit_code == 2
            listed = await asyncio.to_thread(
                runner.invoke, command_cli,
                ["list", "--device", VFD, "--url", url, "--token", op_token, "--json"])
            assert listed.exit_code == 0, listed.output
            newest = json.loads(listed.output)[0]
            assert (newest["result"], newest["token_name"]) == ("refused", "victor")
            assert json.loads(listed.output)[1]["new_value"] == 777


def test_command_line_values() -> None:
    assert parse_value("42") == 42 and parse_value("4.5") == 4.5
    assert parse_value("true") is True and parse_value("auto") == "auto"
    assert parse_value("42", text=True) == "42" and parse_value("[1]") == "[1]"


def test_client_reports_an_unreachable_node() -> None:
    result = CliRunner().invoke(command_cli, ["list", "--url", "http://127.0.0.1:9",
                                              "--token", "x"])
    assert result.exit_code == 2
    assert "cannot reach http://127.0.0.1:9" in result.output
