"""The ISA-95 hierarchy, enterprise > site > area > line > device, one table per tenant forest.

A child's kind is exactly one level below its parent's and a root is an enterprise; the database
cannot express that rule portably, so it is enforced here, before any write.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from millnet.db.schema import AnyRow
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model import AssetKind
from millnet.registry.prefixes import require_own_identifier
from millnet.registry.records import Asset, AssetNode
from millnet.registry.schema import asset_identifiers, assets
from millnet.registry.tenants import require_tenant
from millnet.registry.validation import check_asset_name, check_text

PathSpec = Sequence[tuple[AssetKind | str, str]]

_COLUMNS = (assets.c.id, assets.c.tenant_id, assets.c.parent_id, assets.c.kind, assets.c.name,
            assets.c.path, assets.c.description, assets.c.created_at, assets.c.asset_type)


def _asset(row: AnyRow) -> Asset:
    return Asset(row.id, row.tenant_id, row.parent_id, AssetKind(row.kind), row.name, row.path,
                 row.description, row.created_at, row.asset_type)


def child_kind(parent: AssetKind | None) -> AssetKind | None:
    """The kind every child of ``parent`` has (None: ``parent`` is a device, it has none)."""
    if parent is None:
        return AssetKind.ENTERPRISE
    order = list(AssetKind)
    i = order.index(parent)
    return order[i + 1] if i + 1 < len(order) else None


def check_kind(kind: object, parent: AssetKind | None, field: str) -> AssetKind:
    """``kind`` as an AssetKind, if it is the one level below ``parent`` (None: a root)."""
    try:
        given = AssetKind(str(kind))
    except ValueError:
        allowed = ", ".join(k.value for k in AssetKind)
        raise InvalidInput(f"unknown asset kind {kind!r}; one of {allowed}", field) from None
    expected = child_kind(parent)
    if given is not expected:
        if parent is None:
            raise InvalidInput(f"a root asset must be an enterprise, not {_a(given)}", field)
        if expected is None:
            raise InvalidInput(f"a device cannot have children (got {_a(given)})", field)
        raise InvalidInput(f"the children of {_a(parent)} are {expected}s, not {given}s", field)
    return given


def _a(kind: AssetKind) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def check_path(path: PathSpec) -> list[tuple[AssetKind, str]]:
    """Validate a root-first path of (kind, name) pairs; fields are named ``path[i].kind``..."""
    if isinstance(path, str | bytes) or not path:
        raise InvalidInput("must be a non-empty list of (kind, name) pairs", "path")
    checked: list[tuple[AssetKind, str]] = []
    parent: AssetKind | None = None
    for i, item in enumerate(path):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidInput("must be a (kind, name) pair", f"path[{i}]")
        kind = check_kind(item[0], parent, f"path[{i}].kind")
        checked.append((kind, check_asset_name(item[1], f"path[{i}].name")))
        parent = kind
    return checked


def find_path(conn: Connection, tenant_id: int, path: list[tuple[AssetKind, str]]) -> list[int]:
    """Ids of the longest existing prefix of ``path``, in one query."""
    names = sorted({name for _, name in path})
    rows = conn.execute(
        select(assets.c.id, assets.c.parent_id, assets.c.name)
        .where(assets.c.tenant_id == tenant_id, assets.c.name.in_(names))
    ).all()
    by_parent_name = {(r.parent_id, r.name): int(r.id) for r in rows}
    ids: list[int] = []
    parent_id: int | None = None
    for _, name in path:
        found = by_parent_name.get((parent_id, name))
        if found is None:
            break
        ids.append(found)
        parent_id = found
    return ids


def count_devices(conn: Connection, tenant_id: int) -> int:
    return int(conn.execute(
        select(func.count()).select_from(assets)
        .where(assets.c.tenant_id == tenant_id, assets.c.kind == AssetKind.DEVICE.value),
    ).scalar_one())


def ensure_path(
    conn: Connection, tenant_id: int, path: list[tuple[AssetKind, str]], now: datetime,
) -> list[int]:
    """Create the missing tail of a validated ``path``; ids root first.

    An insert that collides with a concurrent caller's raises IntegrityError out of this
    function; the caller retries the transaction, whose lookup then finds the winner's row.
    """
    ids = find_path(conn, tenant_id, path)
    if len(ids) == len(path):
        return ids
    require_tenant(conn, tenant_id)
    parent_id = ids[-1] if ids else None
    for i in range(len(ids), len(path)):
        kind, name = path[i]
        parent_id = int(conn.execute(insert(assets).values(
            tenant_id=tenant_id, parent_id=parent_id, kind=kind.value, name=name,
            path="/".join(n for _, n in path[: i + 1]), created_at=now,
        )).inserted_primary_key[0])  # type: ignore[index]
        ids.append(parent_id)
    return ids


def create_asset(
    conn: Connection, tenant_id: int, parent_id: int | None, kind: AssetKind | str, name: str,
    description: str | None, now: datetime,
) -> Asset:
    check_asset_name(name, "name")
    check_text(description, "description")
    require_tenant(conn, tenant_id)
    parent = None if parent_id is None else get_asset(conn, parent_id, tenant_id, "parent_id")
    checked = check_kind(kind, None if parent is None else parent.kind, "kind")
    path = name if parent is None else f"{parent.path}/{name}"
    try:
        new_id = conn.execute(insert(assets).values(
            tenant_id=tenant_id, parent_id=parent_id, kind=checked.value, name=name, path=path,
            description=description, created_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError as exc:
        raise Conflict(f"asset {path!r} already exists") from exc
    return Asset(int(new_id), tenant_id, parent_id, checked, name, path, description, now)


def get_asset(
    conn: Connection, asset_id: int, tenant_id: int | None = None, field: str | None = None,
) -> Asset:
    """The asset, if it exists and (given ``tenant_id``) belongs to that tenant."""
    query = select(*_COLUMNS).where(assets.c.id == asset_id)
    if tenant_id is not None:
        query = query.where(assets.c.tenant_id == tenant_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        what = f"asset {asset_id!r} not found"
        raise NotFound(f"{field}: {what}" if field else what)
    return _asset(row)


def find_asset(conn: Connection, tenant_id: int, path: str) -> Asset:
    row = conn.execute(select(*_COLUMNS).where(
        assets.c.tenant_id == tenant_id, assets.c.path == path)).one_or_none()
    if row is None:
        raise NotFound(f"asset {path!r} not found")
    return _asset(row)


def list_children(conn: Connection, tenant_id: int, parent_id: int | None) -> list[Asset]:
    if parent_id is None:
        require_tenant(conn, tenant_id)
        where: ColumnElement[bool] = assets.c.parent_id.is_(None)
    else:
        get_asset(conn, parent_id, tenant_id, "parent_id")
        where = assets.c.parent_id == parent_id
    rows = conn.execute(select(*_COLUMNS).where(assets.c.tenant_id == tenant_id, where)).all()
    return sorted((_asset(r) for r in rows), key=lambda a: (a.name, a.id))


def asset_tree(conn: Connection, tenant_id: int) -> list[AssetNode]:
    """The tenant's whole forest as nested dicts, roots and children in name order."""
    require_tenant(conn, tenant_id)
    # Sorted here, not by ORDER BY: database collations differ, Python's order does not.
    rows = sorted(conn.execute(select(*_COLUMNS).where(assets.c.tenant_id == tenant_id)),
                  key=lambda r: (r.name, r.id))
    nodes: dict[int, AssetNode] = {
        r.id: AssetNode(id=r.id, kind=r.kind, name=r.name, path=r.path,
                        description=r.description, children=[])
        for r in rows
    }
    roots: list[AssetNode] = []
    for r in rows:  # rows are in name order, so every children list comes out sorted
        siblings = roots if r.parent_id is None else nodes[r.parent_id]["children"]
        siblings.append(nodes[r.id])
    return roots


def set_identifier(conn: Connection, tenant_id: int, asset_id: int, handle: str,
                   now: datetime) -> None:
    """Link the asset to ``handle`` (replacing its previous identifier); Conflict when the
    handle names another asset."""
    get_asset(conn, asset_id, tenant_id)
    if not handle or len(handle) > 2048 or "/" not in handle:
        raise InvalidInput("an identifier is prefix/suffix", "handle")
    require_own_identifier(conn, tenant_id, handle)
    owner = conn.execute(select(asset_identifiers.c.asset_id)
                         .where(asset_identifiers.c.handle == handle)).scalar()
    if owner is not None and owner != asset_id:
        raise Conflict(f"identifier {handle} already names asset {owner}")
    conn.execute(delete(asset_identifiers).where(asset_identifiers.c.asset_id == asset_id))
    conn.execute(insert(asset_identifiers).values(asset_id=asset_id, tenant_id=tenant_id,
                                                  handle=handle, created_at=now))


def identifier_of(conn: Connection, asset_id: int) -> str | None:
    found = conn.execute(select(asset_identifiers.c.handle)
                         .where(asset_identifiers.c.asset_id == asset_id)).scalar()
    return str(found) if found is not None else None


def check_asset_type(value: object, field: str = "asset_type") -> str | None:
    """An asset type: 1-64 of ASCII letters, digits, '.', '_' and '-' (or None: no type)."""
    if value is None:
        return None
    if (not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isascii()
            or not all(c.isalnum() or c in "._-" for c in value)):
        raise InvalidInput("an asset type is 1-64 ASCII letters, digits, '.', '_' or '-' "
                           f"(got {value!r})", field)
    return value


def set_asset_type(conn: Connection, tenant_id: int, asset_id: int, asset_type: str | None,
                   ) -> Asset:
    checked = check_asset_type(asset_type)
    get_asset(conn, asset_id, tenant_id, "asset_id")
    conn.execute(update(assets).where(assets.c.id == asset_id).values(asset_type=checked))
    return get_asset(conn, asset_id, tenant_id)


def list_devices(conn: Connection, tenant_id: int | None) -> list[Asset]:
    """Every device (of one tenant, or of all), in id order."""
    query = select(*_COLUMNS).where(assets.c.kind == AssetKind.DEVICE.value)
    if tenant_id is not None:
        query = query.where(assets.c.tenant_id == tenant_id)
    return [_asset(r) for r in conn.execute(query.order_by(assets.c.id))]
