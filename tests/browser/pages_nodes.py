"""The nodes of the console's part-B browser tests, each ``python -m tests.browser.pages_nodes
MODE --data-dir D --port P``: runs until killed and prints one JSON line once it serves.

* ``plant``: the browser plant of ``plant.py`` (the demo's rules, a CNC whose coolant pump is
  out, so an alarm is raised) as a whole node: platform *and* identifier service (prefix
  ``88.100.5``, its Handle HTTP API on a port of its own), so that the console resolves
  identifiers through the platform's API. The tenant holds the prefix (products link to it).
* ``national``: a national node (no platform: ``monitoring_app``), seeded with a small
  situation: two enterprises' summaries and an incident as their reports would leave them, an
  advisory, and an order one enterprise acknowledged and the other did not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from millnet.config import Settings, load_settings
from millnet.connectivity.broker import free_port
from millnet.demo_insight import IDEAL_CYCLE_S, RULES_FILE
from millnet.node import Node
from millnet.registry import Registry
from millnet.services import build_services, serving
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, plant_layout
from millnet.sim.publisher import run_fleet_inprocess
from tests.browser.plant import INTERVAL_S

PREFIX = "88.100.5"
SECRET = "browser-test-admin-secret"


def _tokens(registry: Registry, tenant_id: int | None, path: Path) -> dict[str, str]:
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text())
        return tokens
    tokens = {role: registry.create_token(tenant_id, role, f"browser-{role}")[0]
              for role in ("viewer", "operator")}
    tokens["admin"] = registry.create_token(None, "admin", "browser-admin")[0]
    path.write_text(json.dumps(tokens))
    return tokens


def _settings(data_dir: Path, port: int, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, Any] = {"node": {"data_dir": str(data_dir)}, "mqtt": {"enabled": False},
                                 "api": {"host": "127.0.0.1", "port": port}}
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_settings(None, environ={}, overrides=overrides)


def _secret_file(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = data_dir.parent / "admin.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return secret


async def plant(data_dir: Path, port: int) -> None:
    secret = _secret_file(data_dir)
    id_port = free_port()
    settings = _settings(
        data_dir, port, node={"name": "browser-pages"}, federation={"enabled": False},
        ingest={"batch_max_delay_ms": 100}, rules={"files": [str(RULES_FILE)]},
        kpi={"ideal_cycle_s": IDEAL_CYCLE_S},
        identifiers={"enabled": True, "prefix": PREFIX, "host": "127.0.0.1",
                     "udp_port": id_port, "tcp_port": id_port, "http_port": 0,
                     "admin_secret_file": str(secret)})
    services = build_services(settings)
    fleet_machines = plant_layout(sites=1, lines_per_site=2, machines_per_line=2)
    fleet = EdgeFleet(FactorySignals(fleet_machines, warm=True, pumps_out=[0]))
    async with serving(services) as live:
        node, ids = live.platform, live.identifiers
        assert node is not None and node.sparkplug is not None and ids is not None
        registry, tenant = node.registry, node.tenant_id
        tokens = _tokens(registry, tenant, data_dir / "tokens.json")
        if not registry.identifier_prefixes(tenant):
            registry.set_identifier_prefixes(tenant, [PREFIX])
        print(json.dumps({"port": node.api_port, "tenant_id": tenant, "tokens": tokens,
                          "handle_url": f"http://127.0.0.1:{ids.http_port}",
                          "prefix": PREFIX, "secret": SECRET}), flush=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_fleet_inprocess(fleet, node.sparkplug.handle,
                                               interval=INTERVAL_S))
            tg.create_task(_type_machines(node, len(fleet_machines)))


async def _type_machines(node: Node, expected: int) -> None:
    """cnc and press once the machines exist: their ideal cycle times make OEE's performance
    and the demo's rules bind to them (the demo does the same)."""
    registry, tenant = node.registry, node.tenant_id
    while True:
        typed = 0
        for device in await asyncio.to_thread(registry.list_devices, tenant):
            kind = device.name.split("-")[0].lower()
            if kind in ("cnc", "press"):
                if device.asset_type != kind:
                    await asyncio.to_thread(registry.set_asset_type, tenant, device.id, kind)
                typed += 1
        if typed >= expected:
            if node.insight is not None:
                node.insight.engine.changed(tenant)
            return
        await asyncio.sleep(0.5)


def _seed_national(registry: Registry, issue: Any, done: Path) -> None:
    """Reports as two enterprises' would have left them, an advisory, an order (once)."""
    from millnet.federation import orders, reports

    if done.exists():
        return

    now = datetime.now(UTC).replace(microsecond=0)
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0)
    with registry.engine.begin() as conn:
        reports.apply_summary(conn, "sec-js", "ent-suzhou", {
            "bucket_start": hour.isoformat(), "bucket_seconds": 3600, "region": "320500",
            "sector": "C", "assets": 12, "counts": [
                {"kind": "network.scan", "severity": "high", "count": 7},
                {"kind": "auth.brute_force", "severity": "medium", "count": 3}]}, now)
        reports.apply_summary(conn, "ent-gz", "ent-gz", {
            "bucket_start": hour.isoformat(), "bucket_seconds": 3600, "region": "440100",
            "sector": "D", "assets": 5, "counts": [
                {"kind": "plc.stop", "severity": "critical", "count": 2}]}, now)
        reports.apply_incident(conn, "ent-gz", "ent-gz", {
            "id": "i1", "severity": "critical", "status": "open", "title": "PLC stopped",
            "opened_at": (now - timedelta(minutes=30)).isoformat()}, now)
        order = orders.parse_order({
            "id": "RO-2026-7", "targets": ["ent-suzhou", "ent-gz"], "title": "Patch S7-1200",
            "action": "Update the firmware to V4.5", "advisory_id": "CNVD-2026-1",
            "deadline": (now + timedelta(days=7)).isoformat()}, issuer="nat")
        orders.create_order(conn, order, now)
        reports.apply_order_status(conn, "ent-gz", "ent-gz", {
            "order_id": "RO-2026-7", "state": "acknowledged", "actor": "wang",
            "at": now.isoformat()}, now)
    issue({"id": "CNVD-2026-1", "title": "S7-1200 <b>stop</b> on crafted packets",
           "severity": "critical", "published": now.isoformat(), "regions": ["32"],
           "affected": [{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                         "versionEndExcluding": "4.5"}]})
    done.write_text("")


async def national(data_dir: Path, port: int) -> None:
    from millnet.services import monitoring_only

    settings = _settings(data_dir, port, node={"name": "nat", "role": "national"})
    services = build_services(settings)
    assert services.standalone is not None
    registry, monitoring = services.standalone
    tokens = _tokens(registry, None, data_dir / "tokens.json")
    await asyncio.to_thread(_seed_national, registry, monitoring.views.create_advisory,
                            data_dir / "seeded")
    async with monitoring_only(settings, registry, monitoring) as api_port:
        print(json.dumps({"port": api_port, "tokens": tokens}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["plant", "national"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    run = plant if options.mode == "plant" else national
    try:
        asyncio.run(run(options.data_dir, options.port))
    except KeyboardInterrupt:
        sys.exit(0)
