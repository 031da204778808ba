"""Orders in the registry database (:mod:`millnet.orders.schema`). Blocking: run it in a thread.

Transactions go through the registry's own ``_run`` (errors mapped as the registry maps them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from millnet.db.schema import AnyRow
from millnet.errors import NotFound
from millnet.orders.catalog import ProductDefinition
from millnet.orders.schema import order_counters, order_operations, order_products, orders
from millnet.registry.repository import Registry
from millnet.registry.schema import assets

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OperationRecord:
    seq: int
    name: str
    line_id: int
    line: str  # the line's path
    cycle_s: float
    planned_start_s: float
    planned_end_s: float
    status: str
    good: int
    scrap: int
    started_s: float | None
    finished_s: float | None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: int
    tenant_id: int
    identifier: str
    product: str
    quantity: int
    selection: dict[str, str]
    customer: str | None
    status: str
    lead_time_s: float
    release_s: float
    promised_s: float
    started_s: float | None
    finished_s: float | None
    created_at: datetime
    operations: tuple[OperationRecord, ...]


@dataclass(frozen=True, slots=True)
class NewOperation:
    name: str
    line_id: int
    cycle_s: float
    planned_start_s: float
    planned_end_s: float


@dataclass(slots=True)
class OpenOperation:
    """An operation the tracker follows (mutable: the tracker's own copy)."""

    order_id: int
    seq: int
    last: bool
    line_id: int
    quantity: int
    release_s: float
    planned_start_s: float
    status: str
    good: int
    scrap: int
    started_s: float | None
    finished_s: float | None


@dataclass(frozen=True, slots=True)
class OrderProgress:
    order_id: int
    status: str
    started_s: float | None
    finished_s: float | None


class OrderStore:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        return self.registry._run(work, write=write)

    # -- products -------------------------------------------------------------------------------
    def put_product(self, tenant_id: int, product: ProductDefinition) -> bool:
        """Store (or replace) ``product``; True if it is new."""
        t = order_products
        text = json.dumps(product.to_dict(), separators=(",", ":"))
        now = datetime.now(UTC)

        def work(conn: Connection) -> bool:
            found = conn.execute(select(t.c.id).where(
                t.c.tenant_id == tenant_id, t.c.name == product.name)).scalar()
            if found is None:
                conn.execute(insert(t).values(tenant_id=tenant_id, name=product.name,
                                              definition=text, updated_at=now))
                return True
            conn.execute(update(t).where(t.c.id == found).values(definition=text,
                                                                 updated_at=now))
            return False

        return self._run(work, write=True)

    def get_product(self, tenant_id: int, name: str) -> ProductDefinition:
        t = order_products
        text = self._run(lambda conn: conn.execute(select(t.c.definition).where(
            t.c.tenant_id == tenant_id, t.c.name == name)).scalar())
        if text is None:
            raise NotFound(f"product {name!r} not found")
        return ProductDefinition.model_validate(json.loads(text))

    def list_products(self, tenant_id: int) -> list[ProductDefinition]:
        t = order_products
        rows = self._run(lambda conn: conn.execute(select(t.c.definition).where(
            t.c.tenant_id == tenant_id).order_by(t.c.name)).scalars().all())
        return [ProductDefinition.model_validate(json.loads(r)) for r in rows]

    # -- orders ---------------------------------------------------------------------------------
    def insert_order(self, tenant_id: int, prefix: str, product: str, quantity: int,
                     selection: dict[str, str], customer: str | None, follow_hash: str,
                     lead_time_s: float, release_s: float,
                     operations: Sequence[NewOperation]) -> OrderRecord:
        """The order and its operations in one transaction; its identifier is
        ``prefix/ORDER-<id>``."""
        now = datetime.now(UTC)

        def work(conn: Connection) -> int:
            order_id = int(conn.execute(insert(orders).values(
                tenant_id=tenant_id, identifier=f"pending:{follow_hash}", product=product,
                quantity=quantity, selection=json.dumps(selection), customer=customer,
                follow_hash=follow_hash, status="scheduled", lead_time_s=lead_time_s,
                release_s=release_s, promised_s=max(o.planned_end_s for o in operations),
                created_at=now).returning(orders.c.id)).scalar_one())
            conn.execute(update(orders).where(orders.c.id == order_id).values(
                identifier=f"{prefix}/ORDER-{order_id:06d}"))
            conn.execute(insert(order_operations), [
                {"order_id": order_id, "seq": i, "name": o.name, "line_id": o.line_id,
                 "cycle_s": o.cycle_s, "planned_start_s": o.planned_start_s,
                 "planned_end_s": o.planned_end_s, "status": "planned", "good": 0,
                 "scrap": 0} for i, o in enumerate(operations)])
            return order_id

        return self.get_order(self._run(work, write=True))

    def get_order(self, key: int | str) -> OrderRecord:
        """By id or identifier."""
        where = orders.c.id == key if isinstance(key, int) else orders.c.identifier == key

        def work(conn: Connection) -> list[OrderRecord]:
            return _read_orders(conn, conn.execute(select(orders).where(where)).all())

        found = self._run(work)
        if not found:
            raise NotFound(f"order {key} not found")
        return found[0]

    def follow_hash(self, identifier: str) -> tuple[int, str] | None:
        """(tenant, follow token hash) of an order."""
        row = self._run(lambda conn: conn.execute(select(
            orders.c.tenant_id, orders.c.follow_hash).where(
            orders.c.identifier == identifier)).one_or_none())
        return None if row is None else (int(row.tenant_id), str(row.follow_hash))

    def list_orders(self, tenant_id: int, *, status: str | None = None, after: int = 0,
                    limit: int = 100) -> list[OrderRecord]:
        query = select(orders).where(orders.c.tenant_id == tenant_id, orders.c.id > after)
        if status is not None:
            query = query.where(orders.c.status == status)
        query = query.order_by(orders.c.id).limit(limit)
        return self._run(lambda conn: _read_orders(conn, conn.execute(query).all()))

    def bookings(self, now_s: float) -> dict[int, list[tuple[float, float]]]:
        """Each line's booked time: the plan of every operation not done, extended to what
        the rest of a late one still takes from now."""
        o, op = orders, order_operations
        query = (select(op.c.line_id, op.c.planned_start_s, op.c.planned_end_s, op.c.cycle_s,
                        op.c.good, o.c.quantity)
                 .join(o, o.c.id == op.c.order_id).where(op.c.status != "done"))
        booked: dict[int, list[tuple[float, float]]] = {}
        for r in self._run(lambda conn: conn.execute(query).all()):
            rest = max(r.quantity - r.good, 0) * r.cycle_s
            end = r.planned_end_s if r.planned_end_s >= now_s else now_s + rest
            booked.setdefault(int(r.line_id), []).append((r.planned_start_s, end))
        return booked

    # -- the tracker's ----------------------------------------------------------------------------
    def open_operations(self, after_order: int = 0) -> list[OpenOperation]:
        """The operations of unfinished orders with an id above ``after_order``."""
        o, op = orders, order_operations
        query = (select(op, o.c.quantity, o.c.release_s)
                 .join(o, o.c.id == op.c.order_id)
                 .where(o.c.status != "finished", o.c.id > after_order)
                 .order_by(op.c.order_id, op.c.seq))
        rows = self._run(lambda conn: conn.execute(query).all())
        last: dict[int, int] = {}
        for r in rows:
            last[r.order_id] = max(last.get(r.order_id, -1), r.seq)
        return [OpenOperation(int(r.order_id), int(r.seq), r.seq == last[r.order_id],
                              int(r.line_id), int(r.quantity), r.release_s, r.planned_start_s,
                              r.status, r.good, r.scrap, r.started_s, r.finished_s)
                for r in rows]

    def line_of_operations(self) -> dict[int, int]:
        """Line id -> tenant id of the lines with an operation not done."""
        query = (select(order_operations.c.line_id, orders.c.tenant_id).distinct()
                 .join(orders, orders.c.id == order_operations.c.order_id)
                 .where(order_operations.c.status != "done"))
        return {int(r.line_id): int(r.tenant_id)
                for r in self._run(lambda conn: conn.execute(query).all())}

    def counters(self) -> dict[int, float]:
        rows = self._run(lambda conn: conn.execute(select(order_counters)).all())
        return {int(r.series_id): float(r.value) for r in rows}

    def save_progress(self, operations: Iterable[OpenOperation],
                      progress: Iterable[OrderProgress], counters: dict[int, float]) -> None:
        """What the tracker changed, in one transaction (whole values: a repeat is harmless)."""
        op, o = order_operations, orders
        op_rows = [{"o": x.order_id, "s": x.seq, "status": x.status, "good": x.good,
                    "scrap": x.scrap, "started_s": x.started_s, "finished_s": x.finished_s}
                   for x in operations]
        order_rows = [{"o": p.order_id, "status": p.status, "started_s": p.started_s,
                       "finished_s": p.finished_s} for p in progress]
        counter_rows = [{"series_id": k, "value": v} for k, v in counters.items()]
        def work(conn: Connection) -> None:
            if op_rows:
                conn.execute(update(op).where(and_(op.c.order_id == bindparam("o"),
                                                   op.c.seq == bindparam("s"))),
                             op_rows)
            if order_rows:
                conn.execute(update(o).where(o.c.id == bindparam("o")), order_rows)
            if counter_rows:
                _upsert(conn, counter_rows)

        if op_rows or order_rows or counter_rows:
            self._run(work, write=True)


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(order_counters)
    conn.execute(stmt.on_conflict_do_update(index_elements=["series_id"],
                                            set_={"value": stmt.excluded.value}), rows)


def _read_orders(conn: Connection, rows: Sequence[AnyRow]) -> list[OrderRecord]:
    if not rows:
        return []
    op = order_operations
    ids = [r.id for r in rows]
    ops: dict[int, list[OperationRecord]] = {}
    for r in conn.execute(select(op, assets.c.path).join(assets, assets.c.id == op.c.line_id)
                          .where(op.c.order_id.in_(ids)).order_by(op.c.order_id, op.c.seq)):
        ops.setdefault(r.order_id, []).append(OperationRecord(
            r.seq, r.name, r.line_id, r.path, r.cycle_s, r.planned_start_s, r.planned_end_s,
            r.status, r.good, r.scrap, r.started_s, r.finished_s))
    return [OrderRecord(int(r.id), int(r.tenant_id), r.identifier, r.product, r.quantity,
                        json.loads(r.selection), r.customer, r.status, r.lead_time_s,
                        r.release_s, r.promised_s, r.started_s, r.finished_s, r.created_at,
                        tuple(ops.get(r.id, ()))) for r in rows]
