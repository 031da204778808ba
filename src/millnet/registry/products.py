"""Products: the units a tenant's lines made, and their global identifiers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from millnet.db.schema import AnyRow
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.model import AssetKind
from millnet.registry.assets import get_asset
from millnet.registry.prefixes import require_own_identifier
from millnet.registry.records import Product
from millnet.registry.schema import products
from millnet.registry.tenants import require_tenant
from millnet.registry.validation import check_text, check_time

_COLUMNS = (products.c.id, products.c.tenant_id, products.c.serial, products.c.model,
            products.c.line_id, products.c.batch, products.c.produced_at,
            products.c.identifier, products.c.created_at)


def _product(row: AnyRow) -> Product:
    return Product(int(row.id), int(row.tenant_id), row.serial, row.model,
                   int(row.line_id) if row.line_id is not None else None, row.batch,
                   row.produced_at, row.identifier, row.created_at)


def _required(value: str, field: str) -> str:
    checked = check_text(value, field, 128)
    if not checked or not checked.strip():
        raise InvalidInput("must not be empty", field)
    return checked


def create_product(conn: Connection, tenant_id: int, serial: str, model: str,
                   line_id: int | None, batch: str | None, produced_at: datetime,
                   now: datetime) -> Product:
    require_tenant(conn, tenant_id)
    serial, model = _required(serial, "serial"), _required(model, "model")
    batch = check_text(batch, "batch", 2048)
    produced_at = check_time(produced_at, "produced_at")
    if line_id is not None and get_asset(conn, line_id, tenant_id, "line_id").kind \
            != AssetKind.LINE:
        raise InvalidInput(f"asset {line_id} is not a line", "line_id")
    try:
        with conn.begin_nested():
            new_id = conn.execute(insert(products).values(
                tenant_id=tenant_id, serial=serial, model=model, line_id=line_id,
                batch=batch, produced_at=produced_at, created_at=now)
                .returning(products.c.id)).scalar_one()
    except IntegrityError:
        raise Conflict(f"product {serial!r} already exists") from None
    return get_product(conn, int(new_id))


def get_product(conn: Connection, product_id: int, tenant_id: int | None = None) -> Product:
    query = select(*_COLUMNS).where(products.c.id == product_id)
    if tenant_id is not None:
        query = query.where(products.c.tenant_id == tenant_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"product {product_id} not found")
    return _product(row)


def list_products(conn: Connection, tenant_id: int, *, limit: int,
                  after: int = 0) -> list[Product]:
    require_tenant(conn, tenant_id)
    rows = conn.execute(select(*_COLUMNS).where(products.c.tenant_id == tenant_id,
                                                products.c.id > after)
                        .order_by(products.c.id).limit(limit)).all()
    return [_product(r) for r in rows]


def set_product_identifier(conn: Connection, tenant_id: int, product_id: int,
                           handle: str) -> Product:
    get_product(conn, product_id, tenant_id)
    if not handle or len(handle) > 2048 or "/" not in handle:
        raise InvalidInput("an identifier is prefix/suffix", "handle")
    require_own_identifier(conn, tenant_id, handle)
    owner = conn.execute(select(products.c.id).where(products.c.identifier == handle)).scalar()
    if owner is not None and owner != product_id:
        raise Conflict(f"identifier {handle} already names product {owner}")
    conn.execute(update(products).where(products.c.id == product_id).values(identifier=handle))
    return get_product(conn, product_id)
