"""``millnet demo``: a node and a simulated factory, on embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from millnet.config import Settings, load_settings
from millnet.connectivity.broker import Mosquitto, find_mosquitto
from millnet.connectivity.mqtt import Broker
from millnet.node import build_node, running
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, plant_layout
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
        yield Broker.from_settings(settings.mqtt)
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
                   port: int, console: Console, in_process: bool = False) -> None:
    base = load_settings(config)
    overrides: dict[str, dict[str, object]] = {"api": {"port": port}}
    if data_dir is not None or config is None:
        overrides["node"] = {"data_dir": str(data_dir or Path("millnet-demo"))}
    settings = load_settings(config, overrides=overrides)
    async with _broker(config, base, console, in_process) as broker:
        mqtt: dict[str, object] = {"enabled": broker is not None}
        if broker is not None:
            mqtt |= {"host": broker.host, "port": broker.port}
        settings = load_settings(config, overrides={**overrides, "mqtt": mqtt})
        node = build_node(settings)
        token, _ = node.registry.create_token(None, "admin", "demo")
        machines = plant_layout()
        fleet = EdgeFleet(FactorySignals(machines))
        async with running(node) as live:
            url = f"http://{settings.api.host}:{live.api_port}"
            _banner(console, url, token, settings, len(machines), len(fleet.signals.values))
            assert live.sparkplug is not None
            sim = (run_fleet_mqtt(fleet, broker) if broker is not None
                   else run_fleet_inprocess(fleet, live.sparkplug.handle))
            sim_task = asyncio.create_task(sim)
            try:
                await _report(console, live, duration)
            finally:
                sim_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sim_task


def _banner(console: Console, url: str, token: str, settings: Settings, machines: int,
            points: int) -> None:
    table = Table(title="millnet demo", show_header=False)
    table.add_row("API", f"{url}/docs")
    table.add_row("admin token", token)
    table.add_row("try", f"curl -H 'Authorization: Bearer {token}' {url}/api/v1/tenants")
    table.add_row("plant", f"2 sites, 6 lines, {machines} machines, {points} points "
                           "(Sparkplug B, 1 s)")
    table.add_row("data", str(settings.node.data_dir))
    console.print(table)
    console.print(f"API {url}  token {token}", soft_wrap=True)


async def _report(console: Console, node: object, duration: float | None) -> None:
    from millnet.node import Node

    assert isinstance(node, Node)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while duration is None or loop.time() - start < duration:
        step = 5.0 if duration is None else min(5.0, duration - (loop.time() - start))
        await asyncio.sleep(max(step, 0.0))
        m = node.metrics.registry
        stored = m.get_sample_value("millnet_ingest_samples_stored_total") or 0
        queued = m.get_sample_value("millnet_ingest_queue_depth") or 0
        console.print(f"[{loop.time() - start:6.1f}s] stored {int(stored):,} samples, "
                      f"queue {int(queued):,}")
