"""A simulated OPC UA plant (asyncua server) for tests, the demo and the benchmark.

Address space, laid out by the path rule of docs/opcua.md (Objects/<Site>/<Area>/<Line>/
<Device>/<Variable>), namespace ``urn:millnet:sim``, node ids ``ns=2;s=<Device>.<Variable>``:

* ``Suzhou/Machining/L1/CNC-1``: ``SpindleSpeed`` (rpm), ``SpindleTemperature`` (degC),
  ``State`` (0 stopped, 1 running, 2 idle, 4 fault) and ``PartCounter`` (pcs);
* ``Suzhou/Utilities/Water/Pump-1``: ``FrequencySetpoint`` (Hz, writable: the VFD follows it),
  ``MotorCurrent`` (A) and ``DischargePressure`` (bar);
* ``Suzhou/Packaging/L2/Counter-1``: ``Count`` (pcs);
* with ``bench_variables`` N: ``Bench/Load/L1/Gen-1`` holds ``V0000``... each incremented
  ``bench_rate_hz`` times a second (every write is a change, so each one is a notification).

Security: policy None, and Basic256Sha256 Sign & Encrypt with a self-signed server certificate
created under ``cert_dir`` (``server_cert.der``, the file a client must trust).
"""

from __future__ import annotations

import asyncio
import datetime
import math
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

SERVER_URI = "urn:millnet:sim:opcua"
NAMESPACE = "urn:millnet:sim"

# device path, variable, type, unit, initial value, writable
_PLANT: list[tuple[tuple[str, str, str, str], str, ua.VariantType, str, float, bool]] = [
    (("Suzhou", "Machining", "L1", "CNC-1"), "SpindleSpeed", ua.VariantType.Double, "rpm",
     8000.0, False),
    (("Suzhou", "Machining", "L1", "CNC-1"), "SpindleTemperature", ua.VariantType.Double,
     "degC", 40.0, False),
    (("Suzhou", "Machining", "L1", "CNC-1"), "State", ua.VariantType.Int32, "", 1, False),
    (("Suzhou", "Machining", "L1", "CNC-1"), "PartCounter", ua.VariantType.UInt32, "pcs", 0,
     False),
    (("Suzhou", "Utilities", "Water", "Pump-1"), "FrequencySetpoint", ua.VariantType.Double,
     "Hz", 40.0, True),
    (("Suzhou", "Utilities", "Water", "Pump-1"), "MotorCurrent", ua.VariantType.Double, "A",
     12.0, False),
    (("Suzhou", "Utilities", "Water", "Pump-1"), "DischargePressure", ua.VariantType.Float,
     "bar", 3.2, False),
    (("Suzhou", "Packaging", "L2", "Counter-1"), "Count", ua.VariantType.UInt32, "pcs", 0,
     False),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_certificate(cert_dir: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """The simulator's certificate (DER) and key (PEM), created once in ``cert_dir``."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    cert, key = cert_dir / "server_cert.der", cert_dir / "server_key.pem"
    if not (cert.is_file() and key.is_file()):
        pk = cert_gen.generate_private_key()
        key.write_bytes(cert_gen.dump_private_key_as_pem(pk))
        key.chmod(0o600)
        made = cert_gen.generate_self_signed_app_certificate(
            pk, "millnet simulator", {"organizationName": "millnet"},
            [x509.UniformResourceIdentifier(SERVER_URI), x509.DNSName(socket.gethostname()),
             x509.DNSName(host)], [ExtendedKeyUsageOID.SERVER_AUTH])
        cert.write_bytes(made.public_bytes(Encoding.DER))
    return cert, key


@dataclass
class Plant:
    """A running simulated plant."""

    server: Server
    endpoint: str
    namespace: int
    cert_path: Path | None
    variables: dict[str, Node] = field(default_factory=dict)  # node id string -> node
    bench_writes: int = 0  # values written to the bench variables so far
    bench_nodes: list[ua.NodeId] = field(default_factory=list)
    bench_started: float | None = None  # unix time of the first bench write

    async def set(self, node_id: str, value: float | int | bool | str,
                  status: int = 0) -> None:
        """Write a value (with a status code) as the device would."""
        node = self.variables[node_id]
        variant = await node.read_data_type_as_variant_type()
        dv = ua.DataValue(ua.Variant(value, variant), ua.StatusCode(ua.UInt32(status)))
        await self.server.write_attribute_value(node.nodeid, dv)


async def _build(server: Server, ns: int, plant: Plant, bench_variables: int) -> None:
    objects = server.nodes.objects
    folders: dict[tuple[str, ...], Node] = {}

    async def folder(path: tuple[str, ...]) -> Node:
        if path not in folders:
            parent = objects if len(path) == 1 else await folder(path[:-1])
            folders[path] = await parent.add_folder(ns, path[-1])
        return folders[path]

    for device, name, variant, unit, initial, writable in _PLANT:
        parent = await folder(device)
        node_id = ua.NodeId(ua.String(f"{device[3]}.{name}"), ua.Int16(ns))
        real = variant in (ua.VariantType.Double, ua.VariantType.Float)
        value = ua.Variant(float(initial) if real else int(initial), variant)
        var = await parent.add_variable(node_id, ua.QualifiedName(name, ns), value)
        if writable:
            await var.set_writable()
        await var.write_attribute(AttributeIds.Description, ua.DataValue(ua.Variant(
            ua.LocalizedText(f"{device[3]} {name}"), ua.VariantType.LocalizedText)))
        if unit:
            await var.add_property(ns, "EngineeringUnits", ua.EUInformation(
                NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit)))
        plant.variables[node_id.to_string()] = var
    if bench_variables:
        parent = await folder(("Bench", "Load", "L1", "Gen-1"))
        for i in range(bench_variables):
            node_id = ua.NodeId(ua.String(f"Gen-1.V{i:04d}"), ua.Int16(ns))
            var = await parent.add_variable(node_id, ua.QualifiedName(f"V{i:04d}", ns),
                                            ua.Variant(0.0, ua.VariantType.Double))
            plant.variables[node_id.to_string()] = var
            plant.bench_nodes.append(node_id)


async def _animate(plant: Plant, period_s: float) -> None:
    """The plant's own behaviour: the pump follows its setpoint, the CNC cuts parts."""
    ns = plant.namespace
    rng = random.Random(11)  # noqa: S311 - simulated noise
    t = 0.0
    parts = count = 0
    while True:
        await asyncio.sleep(period_s)
        t += period_s
        setpoint = await plant.variables[f"ns={ns};s=Pump-1.FrequencySetpoint"].read_value()
        speed = 8000.0 + 300.0 * math.sin(t / 7.0) + rng.gauss(0.0, 20.0)
        parts += rng.random() < 0.3
        count += rng.random() < 0.6
        for name, value in (("CNC-1.SpindleSpeed", round(speed, 1)),
                            ("CNC-1.SpindleTemperature", round(55.0 - 15.0 * math.exp(-t / 60), 2)),
                            ("CNC-1.PartCounter", parts),
                            ("Pump-1.MotorCurrent", round(0.3 * float(setpoint) + 0.2
                                                          * rng.random(), 2)),
                            ("Pump-1.DischargePressure", round(0.08 * float(setpoint), 2)),
                            ("Counter-1.Count", count)):
            await plant.set(f"ns={ns};s={name}", value)


def monitored_items(server: Server) -> int:
    """How many monitored items the server's subscriptions hold now."""
    subs = server.iserver.subscription_service.subscriptions.values()
    return sum(len(s.monitored_item_srv._monitored_items) for s in subs)


async def _bench_load(plant: Plant, rate_hz: float, limit: int | None) -> None:
    """Once every bench variable is monitored, increment each ``rate_hz`` times a second
    (``limit`` values in all), each value stamped with its own source timestamp."""
    server, nodes = plant.server, plant.bench_nodes
    while monitored_items(server) < len(nodes):  # noqa: ASYNC110 - asyncua has no event
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    start = loop.time()
    plant.bench_started = time.time()
    tick = 0
    while limit is None or plant.bench_writes < limit:
        tick += 1
        stamp: Any = datetime.datetime.now(datetime.UTC)  # asyncua's DateTime is a datetime
        for node_id in nodes:
            if limit is not None and plant.bench_writes >= limit:
                break
            await server.write_attribute_value(node_id, ua.DataValue(
                ua.Variant(float(tick), ua.VariantType.Double), SourceTimestamp=stamp,
                ServerTimestamp=stamp))
            plant.bench_writes += 1
        delay = start + tick / rate_hz - loop.time()
        await asyncio.sleep(max(delay, 0.0))


@asynccontextmanager
async def serve_plant(host: str = "127.0.0.1", port: int = 4840, *,
                      cert_dir: Path | None = None, animate_s: float | None = 1.0,
                      bench_variables: int = 0, bench_rate_hz: float = 0.0,
                      bench_limit: int | None = None) -> AsyncIterator[Plant]:
    """Run the simulated plant while the context is open.

    With ``cert_dir`` the server also offers Basic256Sha256 Sign & Encrypt (its certificate in
    ``Plant.cert_path``); ``animate_s`` None freezes the plant (tests set values with
    ``Plant.set``); ``bench_rate_hz`` starts the bench load."""
    server = Server()
    await server.init()
    endpoint = f"opc.tcp://{host}:{port}/millnet/"
    server.set_endpoint(endpoint)
    server.set_server_name("millnet simulated plant")
    await server.set_application_uri(SERVER_URI)
    policies = [ua.SecurityPolicyType.NoSecurity]
    cert_path = None
    if cert_dir is not None:
        cert_path, key_path = await asyncio.to_thread(server_certificate, cert_dir, host)
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
        policies.append(ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)
    server.set_security_policy(policies)
    ns = await server.register_namespace(NAMESPACE)
    plant = Plant(server, endpoint, ns, cert_path)
    await _build(server, ns, plant, bench_variables)
    await server.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        if animate_s is not None:
            tasks.append(asyncio.create_task(_animate(plant, animate_s)))
        if bench_variables and bench_rate_hz > 0:
            tasks.append(asyncio.create_task(_bench_load(plant, bench_rate_hz, bench_limit)))
        yield plant
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()
