"""The demo's identifier hierarchy: a national (88), a secondary (88.100) and an enterprise
(88.100.5) identifier node in this process, each on its own ports, with the plant's
products, batches and machines registered at the enterprise node.

The national node delegates 88.100 to the secondary node, which delegates 88.100.5 to the
enterprise node and publishes the industry templates; the national and secondary nodes
resolve recursively, so ``millnet id resolve 88.100.5/PUMP-000123 --server <national>``
works from the top. Registration runs in a worker thread: the enterprise node validates data
against templates it fetches from the secondary node, which is served by this same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from millnet.connectivity.broker import free_port
from millnet.files import private_dir, write_private
from millnet.identifiers.templates import DATA_TYPE, TEMPLATE_TYPE
from millnet.idnode import IdServerOptions, LiveIdNode, identifier_node
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


def _secret(data_dir: Path, name: str) -> Path:
    private_dir(data_dir)
    path = data_dir / f"{name}.secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24) + "\n")
    return path


@contextlib.asynccontextmanager
async def identifier_hierarchy(data_dir: Path, host: str = "127.0.0.1",
                               ) -> AsyncIterator[IdHierarchy]:
    ports = {name: free_port() for name in ("national", "secondary", "enterprise")}

    def opts(name: str, prefix: str, role: str, *, recursive: bool = False,
             parent: str | None = None,
             delegates: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> IdServerOptions:
        return IdServerOptions(prefix, data_dir / name, _secret(data_dir, name), host,
                               ports[name], ports[name], 0, role, parent, delegates, recursive)

    national = opts("national", NATIONAL, "national", recursive=True, delegates=(
        (SECONDARY, (f"{host}:{ports['secondary']}",)),))
    secondary = opts("secondary", SECONDARY, "secondary", recursive=True,
                     parent=f"{host}:{ports['national']}",
                     delegates=((ENTERPRISE, (f"{host}:{ports['enterprise']}",)),))
    enterprise = opts("enterprise", ENTERPRISE, "enterprise",
                      parent=f"{host}:{ports['secondary']}")
    async with identifier_node(national) as n, identifier_node(secondary) as s, \
            identifier_node(enterprise) as e:
        yield IdHierarchy(n, s, e, enterprise.admin_secret_file)


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
    """Batch-register ``items`` (skipping those already there: the demo may restart on the
    same data directory); how many were new."""
    fresh = [item for item in items if not node.store.exists(item[0])]
    if fresh:
        await asyncio.to_thread(node.service.create_many, ADMIN, fresh)
    return len(fresh)


def today() -> datetime:
    return datetime.now(UTC)
