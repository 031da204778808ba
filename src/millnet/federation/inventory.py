"""The enterprise's asset inventory: what devices it has, by vendor, model, firmware, protocol and
open service; sent upward whole on enrollment (``inventory.snapshot``) and as differences
afterwards (``inventory.change``).

Two sources feed it:

* the registry's devices (assets of kind ``device``). The registry has no vendor, model or
  firmware columns; rather than adding them, these are read from the device's description as
  ``key=value`` words, one of ``vendor``, ``model``, ``firmware``, ``address``, ``mac``,
  ``protocols`` and ``services`` (lists comma-separated), e.g.
  ``"Press PLC vendor=Siemens model=S7-1200 firmware=V4.2.1 protocols=s7comm"``;
* hosts the passive probe discovered (:class:`ProbeHost`). A host whose MAC or address equals
  a registered device's is merged into that device (the registry wins where both know a field).

Items are keyed (``asset:<path>`` or ``host:<mac or address>``) so differences name what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from millnet.errors import InvalidInput
from millnet.federation.report_schema import fed_settings
from millnet.model.hosts import ObservedHost
from millnet.registry.schema import assets

MAX_ITEMS: Final = 20_000
MAX_FIELD: Final = 128
MAX_KEY: Final = 255
MAX_LIST: Final = 64
TEXT_FIELDS: Final = ("kind", "name", "address", "mac", "vendor", "model", "firmware")
LIST_FIELDS: Final = ("protocols", "services")
SENT_KEY: Final = "inventory.sent"
_ATTRIBUTE = re.compile(r"\b(vendor|model|firmware|address|mac|protocols|services)=(\S+)")


@dataclass(frozen=True, slots=True)
class InventoryItem:
    key: str
    kind: str  # "registered" or "discovered"
    name: str = ""
    address: str = ""
    mac: str = ""
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    protocols: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    def to_body(self) -> dict[str, Any]:
        body = asdict(self)
        body["protocols"], body["services"] = list(self.protocols), list(self.services)
        return body


#: A host the passive probe saw on the plant network.
ProbeHost = ObservedHost


@dataclass(frozen=True, slots=True)
class InventoryChanges:
    added: tuple[InventoryItem, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, dict[str, Any]], ...] = ()  # key, {field: new value}

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_body(self) -> dict[str, Any]:
        return {"added": [i.to_body() for i in self.added], "removed": list(self.removed),
                "changed": [{"key": k, "fields": f} for k, f in self.changed]}


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    path: str
    name: str
    description: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def _attributes(description: str) -> dict[str, str]:
    return {k: v for k, v in _ATTRIBUTE.findall(description or "")}


def _listed(text: str) -> tuple[str, ...]:
    return tuple(sorted({p.strip().lower() for p in text.split(",") if p.strip()}))


def registry_devices(conn: Connection, tenant_id: int | None = None) -> list[RegisteredDevice]:
    """The registry's devices (all tenants, or one), with their description."""
    query = select(assets.c.path, assets.c.name, assets.c.description).where(
        assets.c.kind == "device")
    if tenant_id is not None:
        query = query.where(assets.c.tenant_id == tenant_id)
    return [RegisteredDevice(r.path, r.name, r.description or "")
            for r in conn.execute(query.order_by(assets.c.path))]


def _from_device(d: RegisteredDevice) -> InventoryItem:
    a = {**_attributes(d.description), **d.extra}
    key = f"asset:{d.path}"
    if len(key) > MAX_KEY:  # deep trees: a stable digest instead of the path
        key = "asset:#" + hashlib.sha256(d.path.encode()).hexdigest()
    return InventoryItem(
        key=key, kind="registered", name=d.name, address=a.get("address", ""),
        mac=a.get("mac", "").lower(), vendor=a.get("vendor", ""), model=a.get("model", ""),
        firmware=a.get("firmware", ""), protocols=_listed(a.get("protocols", "")),
        services=_listed(a.get("services", "")))


def _merge(item: InventoryItem, host: ProbeHost) -> InventoryItem:
    return replace(
        item, address=item.address or host.address, mac=item.mac or host.mac.lower(),
        vendor=item.vendor or host.vendor, model=item.model or host.model,
        firmware=item.firmware or host.firmware,
        protocols=tuple(sorted({*item.protocols, *(p.lower() for p in host.protocols)})),
        services=tuple(sorted({*item.services, *(s.lower() for s in host.services)})))


def inventory_snapshot(devices: Iterable[RegisteredDevice],
                       hosts: Iterable[ProbeHost] = ()) -> list[InventoryItem]:
    """The inventory of registered devices and discovered hosts, sorted by key."""
    items = {i.key: i for i in map(_from_device, devices)}
    by_mac = {i.mac: k for k, i in items.items() if i.mac}
    by_address = {i.address: k for k, i in items.items() if i.address}
    for host in hosts:
        key = by_mac.get(host.mac.lower()) if host.mac else None
        key = key or by_address.get(host.address)
        if key is None:
            key = f"host:{host.mac.lower() or host.address}"
            items.setdefault(key, InventoryItem(key, "discovered", name=host.address))
        items[key] = _merge(items[key], host)
    return [_bounded(items[k]) for k in sorted(items)]


def _bounded(item: InventoryItem) -> InventoryItem:
    """Clip what a parent would refuse (long descriptions, chatty probes) rather than have the
    whole snapshot rejected upstream."""
    def clip(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v[:MAX_FIELD] for v in values)[:MAX_LIST]

    n = MAX_FIELD
    return replace(item, name=item.name[:n], address=item.address[:n], mac=item.mac[:n],
                   vendor=item.vendor[:n], model=item.model[:n], firmware=item.firmware[:n],
                   protocols=clip(item.protocols), services=clip(item.services))


def inventory_diff(old: Sequence[InventoryItem],
                   new: Sequence[InventoryItem]) -> InventoryChanges:
    """What turns ``old`` into ``new``: items added, keys removed, fields changed."""
    before, after = {i.key: i for i in old}, {i.key: i for i in new}
    changed = []
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key].to_body(), after[key].to_body()
        fields = {f: b[f] for f in (*TEXT_FIELDS, *LIST_FIELDS) if a[f] != b[f]}
        if fields:
            changed.append((key, fields))
    return InventoryChanges(
        added=tuple(after[k] for k in sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())), changed=tuple(changed))


def _text(body: Mapping[str, Any], name: str, where: str, *, required: bool = False,
          limit: int = MAX_FIELD) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise InvalidInput(f"must be a string of {int(required)}-{limit} characters",
                           f"{where}.{name}")
    return value


def _strings(body: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = body.get(name, [])
    if (not isinstance(value, list) or len(value) > MAX_LIST
            or not all(isinstance(v, str) and 0 < len(v) <= MAX_FIELD for v in value)):
        raise InvalidInput(f"must be a list of at most {MAX_LIST} short strings",
                           f"{where}.{name}")
    return tuple(sorted({v.lower() for v in value}))


def item_from_body(body: Any, where: str = "item") -> InventoryItem:
    """An item received from a child; errors name the bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("must be an object", where)
    kind = _text(body, "kind", where, required=True)
    if kind not in ("registered", "discovered"):
        raise InvalidInput("must be registered or discovered", f"{where}.kind")
    texts = {f: _text(body, f, where) for f in TEXT_FIELDS if f != "kind"}
    return InventoryItem(key=_text(body, "key", where, required=True, limit=MAX_KEY),
                         kind=kind, **texts,
                         protocols=_strings(body, "protocols", where),
                         services=_strings(body, "services", where))


def changed_fields(body: Any, where: str) -> dict[str, Any]:
    """The ``fields`` of one ``inventory.change`` entry, validated."""
    if not isinstance(body, dict) or not body:
        raise InvalidInput("must be a non-empty object", where)
    unknown = set(body) - {*TEXT_FIELDS, *LIST_FIELDS} - {"kind"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", where)
    out: dict[str, Any] = {}
    for name in body:
        out[name] = _strings(body, name, where) if name in LIST_FIELDS else _text(
            body, name, where)
    return out


def inventory_messages(conn: Connection, current: Sequence[InventoryItem],
                       now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """What the enterprise sends up for ``current``: a snapshot the first time (or after
    :func:`forget_sent`, e.g. on re-enrollment), then only changes (nothing when none). The
    inventory last sent is kept in ``fed_settings`` so a restart does not resend it whole;
    run this on the connection that enqueues the messages, so both commit together."""
    row = conn.execute(select(fed_settings.c.value).where(
        fed_settings.c.name == SENT_KEY)).first()
    value = json.dumps([i.to_body() for i in current])
    if row is None:
        conn.execute(insert(fed_settings).values(name=SENT_KEY, value=value, updated_at=now))
        return [("inventory.snapshot", {"items": [i.to_body() for i in current]})]
    previous = [item_from_body(b) for b in json.loads(row.value)]
    changes = inventory_diff(previous, current)
    if changes.empty:
        return []
    conn.execute(update(fed_settings).where(fed_settings.c.name == SENT_KEY).values(
        value=value, updated_at=now))
    return [("inventory.change", changes.to_body())]


def forget_sent(conn: Connection) -> None:
    """Make the next :func:`inventory_messages` a whole snapshot (a new parent, say)."""
    conn.execute(fed_settings.delete().where(fed_settings.c.name == SENT_KEY))
