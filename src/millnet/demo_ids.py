"""The demo's identifier hierarchy: a national (88), a secondary (88.100) and an enterprise
(88.100.5) identifier node in this process, each on its own ports, with the plant's
products, batches and machines registered at the enterprise node. Each is a node built from
its settings (:func:`hierarchy_plan`); the enterprise one is the demo's platform node.

The national node delegates 88.100 to the secondary node, which delegates 88.100.5 to the
enterprise node and publishes the industry templates; the national and secondary nodes
resolve recursively, so ``millnet id resolve 88.100.5/PUMP-000123 --server <national>``
works from the top. Registration runs in a worker thread: the enterprise node validates data
against templates it fetches from the secondary node, which is served by this same loop.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from millnet.connectivity.broker import free_port
from millnet.files import private_dir, write_private
from millnet.identifiers.hierarchy.templates import DATA_TYPE, TEMPLATE_TYPE
from millnet.idnode import LiveIdNode
from millnet.protocols.handle import HandleValue, ValueReference
from millnet.sim.factory import Machine

ENTERPRISE, SECONDARY, NATIONAL = "88.100.5", "88.100", "88"
ADMIN = ValueReference(f"{ENTERPRISE}/ADMIN", 300)
PRODUCT_TEMPLATE = f"{SECONDARY}/TEMPLATE.product"
BATCH_TEMPLATE = f"{SECONDARY}/TEMPLATE.batch"
EQUIPMENT_TEMPLATE = f"{SECONDARY}/TEMPLATE.equipment"
PRODUCTS_PER_LINE = 40


@dataclass
class IdHierarchy:
    national: LiveIdNode
    secondary: LiveIdNode
    enterprise: LiveIdNode
    secret_file: Path

    @property
    def example(self) -> str:
        return f"{ENTERPRISE}/PUMP-000123"


@dataclass(frozen=True)
class HierarchyPlan:
    """Settings overrides of the three identifier nodes: the national and the secondary node
    whole, and the ``[identifiers]`` section of the enterprise (platform) node."""

    national: dict[str, Any]
    secondary: dict[str, Any]
    enterprise: dict[str, Any]
    secret_file: Path


def _secret(data_dir: Path, name: str) -> Path:
    private_dir(data_dir)
    path = data_dir / f"{name}.secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24) + "\n")
    return path


def hierarchy_plan(data_dir: Path, host: str = "127.0.0.1") -> HierarchyPlan:
    """Free ports and admin secrets for the three nodes, each node's data in ``data_dir``."""
    ports = {name: free_port() for name in ("national", "secondary", "enterprise")}

    def ids(name: str, prefix: str, **more: object) -> dict[str, Any]:
        return {"enabled": True, "prefix": prefix, "host": host, "udp_port": ports[name],
                "tcp_port": ports[name], "http_port": 0,
                "admin_secret_file": str(_secret(data_dir, name)), **more}

    def node(name: str, role: str) -> dict[str, Any]:
        return {"role": role, "name": f"demo-{name}", "platform": False,
                "data_dir": str(data_dir / name)}

    # Identifier services only, in the demo's process (the federation's nodes are their own).
    off = {"enabled": False}
    national = {"node": node("national", "national"), "federation": off, "identifiers": ids(
        "national", NATIONAL, recursive=True,
        delegates=[f"{SECONDARY}={host}:{ports['secondary']}"])}
    secondary = {"node": node("secondary", "secondary"), "federation": off, "identifiers": ids(
        "secondary", SECONDARY, recursive=True, parent=f"{host}:{ports['national']}",
        delegates=[f"{ENTERPRISE}={host}:{ports['enterprise']}"])}
    enterprise = ids("enterprise", ENTERPRISE, parent=f"{host}:{ports['secondary']}")
    return HierarchyPlan(national, secondary, enterprise, data_dir / "enterprise.secret")


#: (handle, serial number, batch handle) -> the URL of the product's live record, if any
ProductLink = Callable[[str, str, str], str | None]


def product_items(machines: Sequence[Machine], today: datetime,
                  link: ProductLink | None = None) -> list[tuple[str, list[HandleValue]]]:
    """One batch per line and :data:`PRODUCTS_PER_LINE` pump units per line, each unit
    linked to its batch (and, through ``link``, to its record in the platform): what the
    plant made today."""
    lines = sorted({(m.site, m.area, m.line) for m in machines})
    items: list[tuple[str, list[HandleValue]]] = []
    serial = 0
    for site, area, line in lines:
        batch = f"{ENTERPRISE}/BATCH-{today:%Y%m%d}-{site.upper()}-{line}"
        start = today.replace(hour=8, minute=0, second=0, microsecond=0)
        items.append((batch, _typed(BATCH_TEMPLATE, {
            "batchNo": batch.rsplit("/", 1)[1], "product": "P-200", "unit": "pcs",
            "quantity": PRODUCTS_PER_LINE, "line": f"{site}/{area}/{line}",
            "producedFrom": start.isoformat().replace("+00:00", "Z"),
            "producedTo": (start + timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
            "materialLots": [{"material": "cast iron HT250", "lot": f"CI-{today:%y%m}-07",
                              "supplier": "Jiangnan Foundry"}],
            "quality": "passed"})))
        for _ in range(PRODUCTS_PER_LINE):
            serial += 1
            handle, number = f"{ENTERPRISE}/PUMP-{serial:06d}", f"SN{today:%y}{serial:07d}"
            values = _typed(PRODUCT_TEMPLATE, {
                "model": "P-200", "name": "centrifugal pump", "manufacturer": "Acme Pumps",
                "serialNumber": number, "productionDate": f"{today:%Y-%m-%d}", "batch": batch,
                "line": f"{site}/{area}/{line}",
                "specs": {"ratedPowerKw": 7.5, "ratedFlowM3h": 50, "weightKg": 86},
                "warrantyMonths": 24})
            url = link(handle, number, batch) if link is not None else None
            if url is not None:
                values.insert(0, HandleValue(1, "URL", url.encode()))
            items.append((handle, values))
    return items


def machine_handle(machine: Machine) -> str:
    return f"{ENTERPRISE}/EQ-{machine.site.upper()}-{machine.line}-{machine.name}"


def machine_item(machine: Machine, link: str | None) -> tuple[str, list[HandleValue]]:
    """A machine's identifier: equipment data, and the link to its live record in the
    platform API when the registry knows the device."""
    values = _typed(EQUIPMENT_TEMPLATE, {
        "type": machine.kind, "model": f"{machine.kind.upper()}-X{len(machine.points)}",
        "manufacturer": "Acme Machines" if machine.kind == "cnc" else "Acme Presses",
        "site": machine.site, "area": machine.area, "line": machine.line,
        "points": len(machine.points)})
    if link is not None:
        values.insert(0, HandleValue(1, "URL", link.encode()))
    return machine_handle(machine), values


def _typed(template: str, data: dict[str, object]) -> list[HandleValue]:
    return [HandleValue(2, TEMPLATE_TYPE, template.encode()),
            HandleValue(3, DATA_TYPE, json.dumps(data, separators=(",", ":")).encode())]


async def register(node: LiveIdNode, items: list[tuple[str, list[HandleValue]]]) -> int:
    """Batch-register ``items``; those already there (the demo may restart on the same data
    directory) only get their URL brought up to date: the API may listen elsewhere now. How
    many were new."""
    fresh = [item for item in items if not node.store.exists(item[0])]
    if fresh:
        await asyncio.to_thread(node.service.create_many, ADMIN, fresh)
    made = {handle for handle, _ in fresh}
    await asyncio.to_thread(_relink, node, [i for i in items if i[0] not in made])
    return len(fresh)


def _relink(node: LiveIdNode, items: list[tuple[str, list[HandleValue]]]) -> None:
    for handle, values in items:
        for url in (v for v in values if v.type == "URL"):
            stored = node.store.get(handle, indexes=(url.index,))
            if not stored:
                node.service.add_values(ADMIN, handle, [url])
            elif stored[0].data != url.data:
                node.service.modify_values(ADMIN, handle, [url])


def today() -> datetime:
    return datetime.now(UTC)
