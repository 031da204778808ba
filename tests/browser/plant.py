"""A node with a small simulated plant, for the browser tests: ``python -m tests.browser.plant
--data-dir D --port P`` runs until killed and prints one JSON line once it serves.

The plant is the demo factory's, small (one site, two lines of two machines, publishing every
0.5 s through the in-process Sparkplug transport), with the demo's rules (the machines typed
``cnc`` and ``press`` as the demo types them) and one CNC whose coolant pump is out (so an alarm
is raised within seconds, and the machine goes down once its spindle overheats). On the first
start it also makes the tokens the tests log in with and a device whose name and point are
markup (``<img ...>``, ``<script>...``): asset names cannot hold '/', so the ``<script>``
element is the point's name, unit and description. A restart on the same data directory (the
connection-lost test) serves the same tokens and ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from millnet.config import load_settings
from millnet.demo_insight import IDEAL_CYCLE_S, RULES_FILE
from millnet.model import AssetKind, DataType, PointSpec
from millnet.node import Node, build_node, running
from millnet.registry import Registry
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, Machine, plant_layout
from millnet.sim.publisher import run_fleet_inprocess

XSS_DEVICE = "<img src=x onerror=alert(1)>"
XSS_TEXT = "<script>alert(1)</script>"
INTERVAL_S = 0.5


def _tokens(registry: Registry, tenant_id: int, path: Path) -> dict[str, str]:
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text())
        return tokens
    tokens = {role: registry.create_token(tenant_id, role, f"browser-{role}")[0]
              for role in ("viewer", "operator")}
    tokens["admin"] = registry.create_token(None, "admin", "browser-admin")[0]
    path.write_text(json.dumps(tokens))
    return tokens


def _xss_device(node: Node) -> int:
    """The device named with markup, beside the plant's lines (created once)."""
    registry, tenant = node.registry, node.tenant_id
    ids = registry.ensure_path(tenant, [
        (AssetKind.ENTERPRISE, registry.get_tenant(tenant).name), (AssetKind.SITE, "Lab"),
        (AssetKind.AREA, "Bench"), (AssetKind.LINE, "B1"), (AssetKind.DEVICE, XSS_DEVICE)])
    device = ids[-1]
    registry.upsert_points(tenant, device, [PointSpec(XSS_TEXT, DataType.DOUBLE, unit=XSS_TEXT,
                                                      description=XSS_TEXT)])
    return device


async def _type_machines(node: Node, machines: list[Machine]) -> None:
    """Give the machines their asset types once they exist (the demo's rules attach to
    them): CNC-101's coolant pump is out, so its low-pressure alarm is raised within seconds."""
    assert node.insight is not None
    kinds = {m.name: m.kind for m in machines}
    while True:
        devices = [d for d in await asyncio.to_thread(node.registry.list_devices, node.tenant_id)
                   if d.name in kinds]
        if len(devices) == len(kinds):
            break
        await asyncio.sleep(0.2)
    for device in devices:
        if device.asset_type != kinds[device.name]:
            await asyncio.to_thread(node.registry.set_asset_type, node.tenant_id, device.id,
                                    kinds[device.name])
    node.insight.engine.changed(node.tenant_id)


async def main(data_dir: Path, port: int) -> None:
    settings = load_settings(None, environ={}, overrides={
        "node": {"data_dir": str(data_dir), "name": "browser-test"},
        "mqtt": {"enabled": False},
        "federation": {"enabled": False},
        "api": {"host": "127.0.0.1", "port": port},
        "ingest": {"batch_max_delay_ms": 100},
        "rules": {"files": [str(RULES_FILE)]},
        "kpi": {"ideal_cycle_s": IDEAL_CYCLE_S},
    })
    node = build_node(settings)
    tokens = _tokens(node.registry, node.tenant_id, data_dir / "tokens.json")
    machines = plant_layout(sites=1, lines_per_site=2, machines_per_line=2)
    fleet = EdgeFleet(FactorySignals(machines, warm=True, pumps_out=[0]))
    stop = asyncio.Event()  # SIGINT or SIGTERM: stopped as `millnet node` stops
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with running(node) as live:
        assert live.sparkplug is not None
        xss = await asyncio.to_thread(_xss_device, live)
        print(json.dumps({"port": live.api_port, "tenant_id": live.tenant_id, "xss_device": xss,
                          "tokens": tokens}), flush=True)
        tasks = [asyncio.create_task(run_fleet_inprocess(fleet, live.sparkplug.handle,
                                                         interval=INTERVAL_S)),
                 asyncio.create_task(_type_machines(live, machines))]
        await stop.wait()
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    asyncio.run(main(options.data_dir, options.port))
