"""Sources through the API (issue 11): a real node serving its API (uvicorn) with a Modbus
source of its TOML, sources added and removed at runtime against the pymodbus simulated plant,
roles and tenancy, and a restarted node restoring the sources added through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from millnet.config import load_settings
from millnet.errors import ConfigError
from millnet.node import Node, build_node, running
from millnet.sim.modbus_server import plant_register_map, serve_plant
from tests.support.nodes import until

GROUPS = [{"name": "default", "interval_ms": 100}, {"name": "slow", "interval_ms": 500}]


def modbus(name: str, port: int, prefix: str = "plant1/utilities/line1") -> dict[str, Any]:
    return {"kind": "modbus", "name": name, "host": "127.0.0.1", "port": port,
            "poll_groups": GROUPS, "registers": plant_register_map(prefix)}


def write_config(tmp_path: Path, plant_port: int) -> Path:
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
port = {plant_port}
poll_groups = [{{name = "default", interval_ms = 200}}]
[[sources.registers]]
device = "plant1/utilities/line1/meter-1"
point = "voltage_l1"
table = "input"
address = 0
type = "float32"
unit_id = 1
""")
    return path


@asynccontextmanager
async def node_api(config: Path) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    node = build_node(load_settings(config, environ={}))
    async with running(node) as live, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{live.api_port}/api/v1", timeout=10) as client:
        yield live, client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def series_names(node: Node) -> set[str]:
    return {p.name for p in node.registry.list_points(node.tenant_id)}


def test_sources_are_managed_through_the_api_and_restored_on_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serve_plant() as plant:
            config = write_config(tmp_path, plant.port)
            async with node_api(config) as (node, api):
                admin = bearer(node.registry.create_token(node.tenant_id, "admin", "a")[0])
                viewer = bearer(node.registry.create_token(node.tenant_id, "viewer", "v")[0])
                other = node.registry.create_tenant("other")
                other_admin = bearer(node.registry.create_token(other.id, "admin", "o")[0])

                listed = (await api.get("/sources", headers=viewer)).json()
                assert {s["name"]: (s["kind"], s["origin"]) for s in listed} == {
                    "gateway": ("modbus", "config"), "http": ("http", "config")}

                answer = await api.post("/sources", json=modbus("pumps", plant.port),
                                        headers=admin)
                assert answer.status_code == 201, answer.text
                assert answer.json()["origin"] == "api"
                await until(lambda: "speed_setpoint" in series_names(node), what="a poll")
                await until(lambda: node.host.get("pumps").health.state == "up")
                one = (await api.get("/sources/pumps", headers=viewer)).json()
                assert one["health"]["state"] == "up"
                assert one["spec"]["port"] == plant.port

                again = await api.post("/sources", json=modbus("pumps", plant.port),
                                       headers=admin)
                assert again.status_code == 409
                bad = modbus("bad", plant.port)
                bad["registers"][3]["type"] = "int128"
                refused = await api.post("/sources", json=bad, headers=admin)
                assert refused.status_code == 400
                assert refused.json()["field"] == "registers[3].type"
                csv = {**modbus("csv", plant.port), "register_map_csv": "/etc/passwd"}
                assert (await api.post("/sources", json=csv, headers=admin)).json()["field"] \
                    == "register_map_csv"
                cert = {"kind": "opcua", "name": "cert", "security": "sign_encrypt",
                        "endpoint": "opc.tcp://127.0.0.1:1", "server_certificate": "/etc/shadow"}
                assert (await api.post("/sources", json=cert, headers=admin)).json()["field"] \
                    == "server_certificate"
                denied = await api.post("/sources", json=modbus("x", plant.port),
                                        headers=viewer)
                assert denied.status_code == 403

                # Another tenant sees nothing of this one's sources and cannot remove them.
                assert (await api.get("/sources", headers=other_admin)).json() == []
                assert (await api.delete("/sources/pumps", headers=other_admin)).status_code \
                    == 404
                # A source of the TOML is read-only here: 409 naming the file.
                conflict = await api.delete("/sources/gateway", headers=admin)
                assert conflict.status_code == 409
                assert str(config) in conflict.json()["detail"]

                spare = await api.post("/sources", json=modbus("spare", plant.port, "p2/a/l"),
                                       headers=admin)
                assert spare.status_code == 201, spare.text
                assert (await api.delete("/sources/spare", headers=admin)).status_code == 204
                assert (await api.get("/sources/spare", headers=admin)).status_code == 404

            async with node_api(config) as (node, api):
                sources = {s["name"]: s["origin"] for s in
                           (await api.get("/sources", headers=admin)).json()}
                assert sources == {"gateway": "config", "http": "config", "pumps": "api"}
                await until(lambda: node.host.get("pumps").health.state == "up",
                            what="the stored source running again")

    asyncio.run(scenario())


def test_toml_sources_are_checked_at_load(tmp_path: Path) -> None:
    path = write_config(tmp_path, 502).with_name("bad.toml")
    text = write_config(tmp_path, 502).read_text()
    path.write_text(text.replace('type = "float32"', 'type = "float33"'))
    with pytest.raises(ConfigError) as bad_type:
        load_settings(path, environ={})
    assert bad_type.value.key == "sources[0].registers[0].type"
    path.write_text(text + text[text.index("[[sources]]"):text.index("[[sources.reg")])
    with pytest.raises(ConfigError) as duplicate:
        load_settings(path, environ={})
    assert duplicate.value.key == "sources[1].name"
    path.write_text(text.replace('name = "gateway"', 'name = "sparkplug"'))
    with pytest.raises(ConfigError) as reserved:
        load_settings(path, environ={})
    assert reserved.value.key == "sources[0].name"
    # The other sections' environment overrides still apply beside [[sources]].
    settings = load_settings(write_config(tmp_path, 502), environ={"MILLNET_API__PORT": "9"})
    assert (settings.api.port, settings.sources[0].name) == (9, "gateway")
