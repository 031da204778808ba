"""Browse a server's address space, and turn chosen folders into registry entries.

``browse()`` walks the hierarchy below the Objects folder (Organizes, HasComponent...; the
properties of a variable are read, not listed) and returns folders and variables with their
datatype, engineering units, description and whether they can be written. ``import_folder``
applies one :class:`~millnet.connectivity.opcua.spec.ImportFolder`'s mapping rule to what it
finds (see :mod:`.mapping`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from millnet.connectivity.opcua.mapping import (
    Placement,
    as_text,
    datatype_of,
    place_by_path,
    place_in_device,
)
from millnet.connectivity.opcua.spec import ImportFolder
from millnet.connectivity.specs import parse_device
from millnet.errors import NotFound
from millnet.model import DataType
from millnet.model.limits import ascii_digits

_CURRENT_WRITE = 0x02
_HAS_PROPERTY = ua.NodeId(ua.Int32(ObjectIds.HasProperty))
_LISTED = (ua.NodeClass.Object, ua.NodeClass.Variable)


@dataclass(frozen=True, slots=True)
class Entry:
    """One folder (object) or variable of the address space, by its browse path below
    Objects."""

    path: tuple[str, ...]
    node_id: str
    node_class: str  # "object" or "variable"
    variant_type: str | None = None
    datatype: DataType | None = None
    unit: str | None = None
    description: str | None = None
    writable: bool = False

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = "/".join(self.path)
        return out


@dataclass
class Imported:
    """What one import folder yielded: the variables placed, and those left out (and why)."""

    placed: list[tuple[Entry, Placement]] = field(default_factory=list)
    skipped: list[tuple[Entry, str]] = field(default_factory=list)


async def browse_client(client: Client, start: Node | None = None,
                        prefix: tuple[str, ...] = (), depth: int = 8) -> list[Entry]:
    """Folders and variables below ``start`` (default Objects), ``depth`` levels down."""
    node = start if start is not None else client.nodes.objects
    out: list[Entry] = []
    await _walk(client, node, prefix, depth, out)
    return out


async def _walk(client: Client, node: Node, prefix: tuple[str, ...], depth: int,
                out: list[Entry]) -> None:
    if depth <= 0:
        return
    refs = await node.get_children_descriptions(refs=ObjectIds.HierarchicalReferences)
    for ref in refs:
        if ref.ReferenceTypeId == _HAS_PROPERTY or ref.NodeClass not in _LISTED:
            continue  # a property describes its parent; it is read with it
        name = ref.BrowseName.to_string() if ref.BrowseName.NamespaceIndex else \
            str(ref.BrowseName.Name)
        path = (*prefix, name)
        if prefix == () and name == "Server":
            continue  # the server's own diagnostics, not the plant
        child = client.get_node(ref.NodeId)
        if ref.NodeClass == ua.NodeClass.Variable:
            out.append(await _variable(child, path))
        else:
            out.append(Entry(path, ref.NodeId.to_string(), "object"))
        await _walk(client, child, path, depth - 1, out)


async def _variable(node: Node, path: tuple[str, ...]) -> Entry:
    variant: ua.VariantType | None
    try:
        variant = await node.read_data_type_as_variant_type()
    except (UaError, ValueError, KeyError):
        variant = None
    description = await _optional_text(node, AttributeIds.Description)
    access = await node.read_attribute(AttributeIds.UserAccessLevel,
                                       raise_on_bad_status=False)
    level = access.Value.Value if access.Value is not None else 0
    unit = None
    for prop in await node.get_properties():
        name = (await prop.read_browse_name()).Name
        if name == "EngineeringUnits":
            value = await prop.read_value()
            if isinstance(value, ua.EUInformation):
                unit = value.DisplayName.Text or None
    return Entry(path, node.nodeid.to_string(), "variable",
                 variant.name if variant is not None else None,
                 datatype_of(variant) if variant is not None else None,
                 unit, description, bool(int(level or 0) & _CURRENT_WRITE))


async def _optional_text(node: Node, attr: AttributeIds) -> str | None:
    dv = await node.read_attribute(attr, raise_on_bad_status=False)
    if dv.Value is None or dv.Value.Value is None:
        return None
    return as_text(dv.Value.Value) or None


async def find_folder(client: Client, parts: list[str]) -> Node:
    """The node at ``parts`` (browse names) below Objects; NotFound names the missing step."""
    node = client.nodes.objects
    for i, part in enumerate(parts):
        refs = await node.get_children_descriptions(refs=ObjectIds.HierarchicalReferences)
        match = [r for r in refs if _name_matches(r.BrowseName, part)]
        if not match:
            where = "/".join(parts[:i + 1])
            raise NotFound(f"browse_path: no node {where!r} below Objects")
        node = client.get_node(match[0].NodeId)
    return node


def _name_matches(name: ua.QualifiedName, part: str) -> bool:
    head, sep, tail = part.partition(":")
    if sep and ascii_digits(head, 5):
        return bool(name.Name == tail and name.NamespaceIndex == int(head))
    return bool(name.Name == part)


async def import_folder(client: Client, folder: ImportFolder) -> Imported:
    """Apply ``folder``'s mapping rule to the variables below it."""
    parts = folder.path_parts
    start = await find_folder(client, parts)
    entries = await browse_client(client, start, tuple(parts), folder.max_depth)
    result = Imported()
    device = parse_device(folder.device) if folder.device is not None else None
    for entry in entries:
        if entry.node_class != "variable":
            continue
        if entry.datatype is None:
            result.skipped.append((entry, f"type {entry.variant_type} is not ingested"))
            continue
        placed = (place_in_device(device, entry.path[len(parts):]) if device is not None
                  else place_by_path(entry.path))
        if placed is None:
            result.skipped.append((entry, "fewer than Site/Area/Line/Device/Variable levels"))
            continue
        result.placed.append((entry, placed))
    return result


async def browse(endpoint: str, depth: int = 8, timeout_s: float = 4.0) -> list[Entry]:
    """Connect without security and list the address space below Objects."""
    client = Client(endpoint, timeout=timeout_s)
    async with client:
        return await browse_client(client, depth=depth)
