"""``millnet demo``: a node and a simulated factory, on embedded defaults: Sparkplug B machines
over MQTT, an OPC UA plant and a Modbus TCP plant (``demo_field``), the identifier
hierarchy (``demo_ids``), and rules, alarms and OEE on all of it (``demo_insight``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from millnet import demo_federation, demo_federation_events, demo_orders
from millnet.config import Settings, load_settings
from millnet.connectivity.broker import Mosquitto, find_mosquitto
from millnet.connectivity.mqtt import Broker
from millnet.demo_field import FieldDevices, field_devices
from millnet.demo_ids import (
    ENTERPRISE,
    IdHierarchy,
    ProductLink,
    hierarchy_plan,
    machine_handle,
    machine_item,
    product_items,
    register,
    today,
)
from millnet.demo_insight import (
    IDEAL_CYCLE_S,
    RULES_FILE,
    InsightView,
    assign_asset_types,
    coolant_incidents,
)
from millnet.errors import MillnetError, NotFound
from millnet.node import Node, mqtt_options
from millnet.services import LiveServices, build_services, serving
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, Machine, plant_layout
from millnet.sim.publisher import run_fleet_inprocess, run_fleet_mqtt


def _broker_configured(config: Path | None) -> bool:
    if "MILLNET_MQTT__HOST" in os.environ or "MILLNET_MQTT__PORT" in os.environ:
        return True
    return config is not None and "[mqtt]" in config.read_text(encoding="utf-8")


@contextlib.asynccontextmanager
async def _broker(config: Path | None, settings: Settings, console: Console, in_process: bool,
                  ) -> AsyncIterator[Broker | None]:
    if in_process:
        console.print("MQTT: none, using the in-process transport (--in-process)")
        yield None
        return
    if _broker_configured(config):
        console.print(f"MQTT: the configured broker {settings.mqtt.host}:{settings.mqtt.port}")
        yield mqtt_options(settings).broker
        return
    binary = find_mosquitto()
    if binary is None:
        console.print("MQTT: no broker configured and mosquitto not installed: "
                      "using the in-process transport")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="millnet-mosquitto-") as tmp:
        broker = Mosquitto(binary, Path(tmp))
        broker.start()
        console.print(f"MQTT: started Mosquitto ({binary}) on 127.0.0.1:{broker.port}")
        try:
            yield Broker("127.0.0.1", broker.port)
        finally:
            broker.stop()


async def run_demo(config: Path | None, *, duration: float | None, data_dir: Path | None,
                   port: int, console: Console, in_process: bool = False,
                   federation: bool = True) -> None:
    # SIGTERM stops the demo as Ctrl-C does (its broker, nodes and stores closed in order).
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    base = load_settings(config)
    overrides: dict[str, dict[str, object]] = {
        "api": {"port": port},
        # The demo's rules beside any of the configuration's own; its machines' cycle times.
        "rules": {"files": [str(f) for f in base.rules.resolved_files(config)]
                  + [str(RULES_FILE)]},
        "kpi": {"ideal_cycle_s": IDEAL_CYCLE_S | base.kpi.ideal_cycle_s},
        # EPCIS events of the lines' batches (docs/traceability.md), unless the file says no.
        "trace": {"emit": base.trace.emit if "emit" in base.trace.model_fields_set else True}}
    if data_dir is not None or config is None:
        overrides["node"] = {"data_dir": str(data_dir or Path("millnet-demo"))}
        if config is None:  # the node is enterprise #1 of the demo's federation
            overrides["node"]["name"] = demo_federation.ENTERPRISE_1
    settings = load_settings(config, overrides=overrides)
    plan = hierarchy_plan(settings.node.data_dir / "identifiers")
    # The national and secondary nodes are the demo's own: the environment is not theirs.
    # They serve identifiers only: the federation's nodes are processes of their own.
    national = build_services(load_settings(None, environ={}, overrides={
        **plan.national, "federation": {"enabled": False}}))
    secondary = build_services(load_settings(None, environ={}, overrides={
        **plan.secondary, "federation": {"enabled": False}}))
    federated = federation and settings.node.role == "enterprise" and settings.federation.enabled
    async with (_broker(config, base, console, in_process) as broker,
                _federation(settings.node.data_dir, federated) as fed):
        mqtt: dict[str, object] = {"enabled": broker is not None}
        if broker is not None:
            mqtt |= {"host": broker.host, "port": broker.port}
        if fed is not None:
            overrides["federation"] = demo_federation.child_overrides(fed.secondary)
        settings = load_settings(config, overrides={**overrides, "mqtt": mqtt,
                                                    "identifiers": plan.enterprise})
        services = build_services(settings)
        assert services.platform is not None
        token, _ = services.platform.registry.create_token(None, "admin", "demo")
        machines = plant_layout()
        bad_pumps, pumps_out = coolant_incidents(machines)
        fleet = EdgeFleet(FactorySignals(machines, warm=True, bad_pumps=bad_pumps,
                                         pumps_out=pumps_out))
        async with serving(national) as n, serving(secondary) as s, serving(services) as e:
            live, ids = e.platform, _hierarchy(n, s, e, plan.secret_file)
            assert live is not None and live.sparkplug is not None
            url = f"http://{settings.api.host}:{live.api_port}"
            # The plant's tenant registers its identifiers under the enterprise prefix.
            await asyncio.to_thread(live.registry.set_identifier_prefixes, live.tenant_id,
                                    [ENTERPRISE])
            items = await asyncio.to_thread(product_items, machines, today(),
                                            _product_records(live, url))
            made = await register(ids.enterprise, items)
            async with field_devices(live.host) as field:
                _banner(console, url, token, settings, len(machines),
                        len(fleet.signals.values))
                _field_banner(console, field, url, token)
                _id_banner(console, ids, made)
                sim = (run_fleet_mqtt(fleet, broker) if broker is not None
                       else run_fleet_inprocess(fleet, live.sparkplug.handle))
                assert live.insight is not None
                view = InsightView(live.insight, live.registry, live.tenant_id)
                async with asyncio.TaskGroup() as tg:
                    background = [tg.create_task(sim), tg.create_task(
                        _identify_machines(console, live, ids, machines, url)),
                        tg.create_task(assign_asset_types(live.insight, live.tenant_id,
                                                          machines, console)),
                        tg.create_task(demo_orders.order_stream(console, live))]
                    if fed is not None:
                        background.append(tg.create_task(_federation_events(
                            console, fed, settings, url, e, broker)))
                    await _report(console, live, view, duration)
                    for task in background:
                        task.cancel()
                if fed is not None:
                    await demo_federation_events.final_situation(console, fed)


@contextlib.asynccontextmanager
async def _federation(data_dir: Path, federated: bool,
                      ) -> AsyncIterator[demo_federation.Federation | None]:
    if not federated:
        yield None
        return
    async with demo_federation.federation(data_dir) as fed:
        yield fed


async def _federation_events(console: Console, fed: demo_federation.Federation,
                             settings: Settings, url: str, live: LiveServices,
                             broker: Broker | None) -> None:
    """The federation's scenario; its failure is reported, never the end of the demo."""
    assert live.platform is not None and live.platform.sparkplug is not None
    handle_http = (f"http://127.0.0.1:{live.identifiers.http_port}"
                   if live.identifiers is not None and live.identifiers.http_port else None)
    node = demo_federation_events.DemoNode(settings, url, handle_http, broker,
                                           live.platform.sparkplug.handle)
    try:
        await demo_federation_events.run_scenario(console, fed, node)
    except (MillnetError, httpx.HTTPError, OSError) as exc:
        console.print(f"[red]federation demo[/red] {exc}", soft_wrap=True)


def _hierarchy(national: LiveServices, secondary: LiveServices, enterprise: LiveServices,
               secret_file: Path) -> IdHierarchy:
    assert national.identifiers and secondary.identifiers and enterprise.identifiers
    return IdHierarchy(national.identifiers, secondary.identifiers, enterprise.identifiers,
                       secret_file)


def _banner(console: Console, url: str, token: str, settings: Settings, machines: int,
            points: int) -> None:
    table = Table(title="millnet demo", show_header=False)
    table.add_row("API", f"{url}/docs")
    table.add_row("console", f"{url}/console/ (log in with the admin token)")
    table.add_row("admin token", token)
    table.add_row("try", f"curl -H 'Authorization: Bearer {token}' {url}/api/v1/tenants")
    table.add_row("plant", f"2 sites, 6 lines, {machines} machines, {points} points "
                           "(Sparkplug B, 1 s)")
    table.add_row("data", str(settings.node.data_dir))
    console.print(table)
    console.print(f"API {url}  token {token}", soft_wrap=True)


def _field_banner(console: Console, field: FieldDevices, url: str, token: str) -> None:
    table = Table(title="field devices (sources of the node)", show_header=False)
    table.add_row("OPC UA", f"{field.opcua_endpoint}  (CNC-1, Pump-1, Counter-1; security "
                            "none)")
    table.add_row("Modbus TCP", f"{field.modbus_address}  (meter-1, pump-vfd-1, packer-1 "
                                "behind one gateway)")
    table.add_row("try", f"curl -H 'Authorization: Bearer {token}' {url}/api/v1/sources")
    console.print(table)
    console.print(f"field OPC UA {field.opcua_endpoint}  Modbus {field.modbus_address}",
                  soft_wrap=True)


def _product_records(node: Node, api_url: str) -> ProductLink:
    """Record each product in the registry (once: the demo may restart on its data), linked
    to its identifier; the identifier's URL value points back at the record."""
    known = {p.serial: p for p in node.registry.list_products(node.tenant_id, limit=10_000)}

    def link(handle: str, serial: str, batch: str) -> str:
        product = known.get(serial) or node.registry.create_product(
            node.tenant_id, serial, "P-200", batch=batch)
        if product.identifier != handle:
            node.registry.set_product_identifier(node.tenant_id, product.id, handle)
        return f"{api_url}/api/v1/products/{product.id}"

    return link


def _id_banner(console: Console, ids: IdHierarchy, registered: int) -> None:
    table = Table(title="identifier resolution", show_header=False)
    for name, node in (("national 88", ids.national), ("secondary 88.100", ids.secondary),
                       ("enterprise 88.100.5", ids.enterprise)):
        table.add_row(name, f"udp/tcp 127.0.0.1:{node.udp_port}  http :{node.http_port}")
    table.add_row("registered", f"{registered} products and batches (templates of 88.100); "
                                "machines follow once they have reported")
    table.add_row("try", f"millnet id resolve {ids.example} "
                         f"--server 127.0.0.1:{ids.national.udp_port}")
    table.add_row("or", f"curl http://127.0.0.1:{ids.enterprise.http_port}"
                        f"/api/handles/{ids.example}")
    console.print(table)
    console.print(f"identifier {ids.example}  national 127.0.0.1:{ids.national.udp_port}",
                  soft_wrap=True)


async def _identify_machines(console: Console, node: Node, ids: IdHierarchy,
                             machines: list[Machine], api_url: str) -> None:
    """Give each machine an identifier linking to its live record in the platform API, as
    soon as its birth has put it in the registry."""
    tenant = node.registry.get_tenant(node.tenant_id)
    pending = list(machines)
    links: list[tuple[int, str]] = []
    while pending:
        await asyncio.sleep(1.0)
        ready = []
        for machine in pending:
            path = f"{tenant.name}/{machine.site}/{machine.area}/{machine.line}/{machine.name}"
            try:
                device = await asyncio.to_thread(node.registry.find_asset, tenant.id, path)
            except NotFound:
                continue
            ready.append(machine_item(machine, f"{api_url}/api/v1/devices/{device.id}"))
            links.append((device.id, machine_handle(machine)))
        if ready:
            await register(ids.enterprise, ready)
            for device_id, handle in links:  # the registry knows its devices' identifiers
                await asyncio.to_thread(node.registry.set_identifier, tenant.id, device_id,
                                        handle)
            links.clear()
            done = {name for name, _ in ready}
            pending = [m for m in pending if machine_handle(m) not in done]
            if not pending:
                console.print(f"identifiers: {len(machines)} machines registered, e.g. "
                              f"{machine_handle(machines[0])}")


TABLES_EVERY_S = 30.0  # the alarm and OEE tables; a status line every 5 s


async def _report(console: Console, node: Node, view: InsightView,
                  duration: float | None) -> None:
    loop = asyncio.get_running_loop()
    start = tables_at = loop.time()
    while duration is None or loop.time() - start < duration:
        step = 5.0 if duration is None else min(5.0, duration - (loop.time() - start))
        await asyncio.sleep(max(step, 0.0))
        m = node.metrics.registry
        stored = m.get_sample_value("millnet_ingest_samples_stored_total") or 0
        queued = m.get_sample_value("millnet_ingest_queue_depth") or 0
        console.print(f"[{loop.time() - start:6.1f}s] stored {int(stored):,} samples, "
                      f"queue {int(queued):,}; {await view.summary()}", soft_wrap=True)
        if loop.time() - tables_at >= TABLES_EVERY_S:
            tables_at = loop.time()
            for table in await view.tables():
                console.print(table)
    for table in await view.tables():  # where the demo stands as it ends
        console.print(table)
