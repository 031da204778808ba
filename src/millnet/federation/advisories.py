"""Security advisories: issued by a national or secondary node, relayed down the tree, matched
against each enterprise's inventory, answered upward with ``advisory.match``.

An advisory's affected products are CPE 2.3 matches as in NVD's configurations JSON: a
``cpe`` name (vendor and product may carry wildcards; a concrete version in it means that exact
version) and optional ``versionStartIncluding``/``versionStartExcluding``/
``versionEndIncluding``/``versionEndExcluding`` bounds, compared with
:func:`millnet.federation.versions.compare_versions`. ``{"vendor": ..., "product": ...}`` is
accepted as a shorthand for ``cpe:2.3:*:<vendor>:<product>:*:...``.

Matching reads an item's vendor and model (lower case, spaces as ``_``, as NVD writes them)
against the name's vendor and product; the CPE part (a/o/h) is not checked, since an inventory
item is a device whatever its part. An item whose firmware is unknown or unreadable while the
match constrains the version is reported as affected with ``certain=False``: a parent would
rather hear "maybe" than nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from millnet.errors import InvalidInput, NotFound
from millnet.federation.cpe import ANY, NA, Cpe, attribute_matches, bind, format_cpe, parse_cpe
from millnet.federation.inventory import InventoryItem
from millnet.federation.regions import province_of
from millnet.federation.report_schema import fed_advisories
from millnet.federation.versions import compare_versions, version_key
from millnet.model.security import Severity

MAX_AFFECTED: Final = 256
MAX_TEXT: Final = 10_000
BOUNDS: Final = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding",
                 "versionEndExcluding")
_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


@dataclass(frozen=True, slots=True)
class ProductMatch:
    cpe: Cpe
    start_including: str | None = None
    start_excluding: str | None = None
    end_including: str | None = None
    end_excluding: str | None = None

    def to_body(self) -> dict[str, str]:
        body = {"cpe": format_cpe(self.cpe)}
        values = (self.start_including, self.start_excluding, self.end_including,
                  self.end_excluding)
        body.update({k: v for k, v in zip(BOUNDS, values, strict=True) if v is not None})
        return body

    @property
    def constrains_version(self) -> bool:
        return self.cpe.version not in (ANY, NA) or any(
            v is not None for v in (self.start_including, self.start_excluding,
                                    self.end_including, self.end_excluding))


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    title: str
    severity: Severity
    published: datetime
    description: str
    affected: tuple[ProductMatch, ...]
    regions: tuple[str, ...] = ()  # empty: everywhere

    def to_body(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "severity": self.severity.label,
                "published": self.published.isoformat(), "description": self.description,
                "affected": [m.to_body() for m in self.affected], "regions": list(self.regions)}


@dataclass(frozen=True, slots=True)
class AffectedAsset:
    item_key: str
    vendor: str
    product: str
    version: str
    certain: bool = True

    def to_body(self) -> dict[str, Any]:
        return {"item_key": self.item_key, "vendor": self.vendor, "product": self.product,
                "version": self.version, "certain": self.certain}


def _string(body: dict[str, Any], name: str, limit: int, where: str = "") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"must be a non-empty string of at most {limit} characters",
                           where + name)
    return value.strip()


def check_id(value: str, field: str) -> str:
    if not value or len(value) > 64 or not set(value) <= _ID_CHARS:
        raise InvalidInput("must be 1-64 letters, digits or - _ . :", field)
    return value


def _bound(entry: dict[str, Any], name: str, where: str) -> str | None:
    if name not in entry or entry[name] is None:
        return None
    value = _string(entry, name, 64, where)
    try:
        version_key(value)  # refuses what is no version, before it is stored
    except InvalidInput:
        raise InvalidInput(f"{value!r} is not a version", where + name) from None
    return value


def parse_match(entry: Any, where: str) -> ProductMatch:
    if not isinstance(entry, dict):
        raise InvalidInput("must be an object", where)
    if "cpe" in entry:
        cpe = parse_cpe(_string(entry, "cpe", 512, where + "."))
    else:
        vendor = bind(_string(entry, "vendor", 128, where + ".").replace(" ", "_"))
        product = bind(_string(entry, "product", 128, where + ".").replace(" ", "_"))
        version = bind(entry["version"]) if isinstance(entry.get("version"), str) else ANY
        cpe = Cpe(ANY, vendor, product, version)
    bounds = [_bound(entry, name, where + ".") for name in BOUNDS]
    return ProductMatch(cpe, *bounds)


def parse_advisory(body: Any) -> Advisory:
    """An advisory from an API request or a parent's message; errors name the bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("an advisory is an object", "advisory")
    affected = body.get("affected")
    if not isinstance(affected, list) or not 0 < len(affected) <= MAX_AFFECTED:
        raise InvalidInput(f"must list 1-{MAX_AFFECTED} products", "affected")
    try:
        severity = Severity.parse(_string(body, "severity", 16))
    except ValueError as exc:
        raise InvalidInput(str(exc), "severity") from None
    raw_published = _string(body, "published", 40)
    try:
        published = datetime.fromisoformat(raw_published)
        published = (published if published.tzinfo else published.replace(tzinfo=UTC)
                     ).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput("must be an ISO 8601 time", "published") from None
    regions = body.get("regions", [])
    if not isinstance(regions, list) or not all(
            isinstance(r, str) and province_of(r) != "??" for r in regions):
        raise InvalidInput("must be a list of GB/T 2260 codes", "regions")
    return Advisory(
        id=check_id(_string(body, "id", 64), "id"), title=_string(body, "title", 255),
        severity=severity, published=published,
        description=str(body.get("description", ""))[:MAX_TEXT],
        affected=tuple(parse_match(e, f"affected[{i}]") for i, e in enumerate(affected)),
        regions=tuple(regions))


def _norm(text: str) -> str:
    return text.strip().lower().replace(" ", "_")


def _version_ok(m: ProductMatch, firmware: str) -> bool:
    if m.cpe.version not in (ANY, NA):
        pattern = m.cpe.version
        if "*" in pattern or "?" in pattern:
            if not attribute_matches(pattern, firmware):
                return False
        elif compare_versions(pattern.replace("\\", ""), firmware) != 0:
            return False
    # compare_versions(bound, firmware): <= 0 means the firmware is at or after the bound
    checks: tuple[tuple[str | None, Callable[[int], bool]], ...] = (
        (m.start_including, lambda c: c <= 0), (m.start_excluding, lambda c: c < 0),
        (m.end_including, lambda c: c >= 0), (m.end_excluding, lambda c: c > 0))
    return all(bound is None or ok(compare_versions(bound, firmware)) for bound, ok in checks)


def _firmware_readable(firmware: str) -> bool:
    try:
        version_key(firmware)
    except InvalidInput:
        return False
    return True


def match_advisory(advisory: Advisory,
                   inventory: Sequence[InventoryItem]) -> list[AffectedAsset]:
    """The inventory items the advisory affects (each once), by item key."""
    found: dict[str, AffectedAsset] = {}
    for item in inventory:
        vendor, product = _norm(item.vendor), _norm(item.model)
        if not vendor or not product or item.key in found:
            continue
        for m in advisory.affected:
            if not (attribute_matches(m.cpe.vendor, vendor)
                    and attribute_matches(m.cpe.product, product)):
                continue
            known = bool(item.firmware) and _firmware_readable(item.firmware)
            if known and m.constrains_version and not _version_ok(m, item.firmware):
                continue
            certain = known or not m.constrains_version
            found[item.key] = AffectedAsset(item.key, vendor, product, item.firmware, certain)
            break
    return [found[k] for k in sorted(found)]


def match_reply(advisory_id: str, affected: Iterable[AffectedAsset]) -> dict[str, Any]:
    """The body of the ``advisory.match`` an enterprise sends upward (an empty list: none)."""
    return {"advisory_id": advisory_id, "affected": [a.to_body() for a in affected]}


@dataclass(frozen=True, slots=True)
class Child:
    """What a node knows of one of its children when relaying."""

    node_id: str
    role: str  # "enterprise" or "secondary"
    region: str = ""


def relay_targets(advisory: Advisory, children: Iterable[Child]) -> list[str]:
    """The children an advisory goes to: all, or those in (or, for a secondary, overlapping)
    the advisory's regions. A secondary relays onward by the same rule."""
    if not advisory.regions:
        return sorted(c.node_id for c in children)
    out = []
    for child in children:
        for region in advisory.regions:
            # one of the two codes is a prefix of the other: same province/city/county line
            if child.region and (child.region.startswith(region)
                                 or region.startswith(child.region)):
                out.append(child.node_id)
                break
    return sorted(out)


def relay_messages(advisory: Advisory,
                   children: Iterable[Child]) -> list[tuple[str, str, dict[str, Any]]]:
    """(child node id, kind, body) of each ``advisory`` message to send down."""
    body = advisory.to_body()
    return [(node, "advisory", body) for node in relay_targets(advisory, children)]


def save_advisory(conn: Connection, advisory: Advisory, issuer: str,
                  received_from: str | None, now: datetime) -> bool:
    """Store an advisory unless one with its id is stored already; whether it was new."""
    if conn.execute(select(fed_advisories.c.id).where(
            fed_advisories.c.id == advisory.id)).first() is not None:
        return False
    conn.execute(insert(fed_advisories).values(
        id=advisory.id, issuer=issuer, title=advisory.title, severity=int(advisory.severity),
        published=advisory.published, description=advisory.description,
        affected=json.dumps({"affected": [m.to_body() for m in advisory.affected],
                             "regions": list(advisory.regions)}),
        received_from=received_from, created_at=now))
    return True


def _from_row(row: Any) -> Advisory:
    stored = json.loads(row.affected)
    return parse_advisory({"id": row.id, "title": row.title,
                           "severity": Severity(row.severity).label,
                           "published": row.published.isoformat(),
                           "description": row.description, **stored})


def list_advisories(conn: Connection, limit: int = 200) -> list[tuple[Advisory, str]]:
    """Stored advisories, newest first, each with its issuer."""
    rows = conn.execute(select(fed_advisories).order_by(
        fed_advisories.c.published.desc(), fed_advisories.c.id).limit(limit))
    return [(_from_row(r), r.issuer) for r in rows]


def get_advisory(conn: Connection, advisory_id: str) -> Advisory:
    row = conn.execute(select(fed_advisories).where(fed_advisories.c.id == advisory_id)).first()
    if row is None:
        raise NotFound(f"advisory {advisory_id!r} not found")
    return _from_row(row)
