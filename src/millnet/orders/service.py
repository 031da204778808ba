"""Placing orders: a configuration checked against its product's rules becomes a work order,
scheduled on the plant's lines, with a global identifier and a follow token (blocking: the
API calls it in its thread pool).

* **Identifier.** ``<prefix>/ORDER-<id>``, under the tenant's first identifier prefix (else the
  node's). With the node's identifier service running (``registrar``), the handle is
  registered with a ``URL`` value: the order's status URL, so resolving the identifier over
  the Handle protocol points at the order.
* **Follow token.** Each order gets a token of its own (``mno_`` and 32 random bytes), shown
  once, stored as its SHA-256: it reads that one order and nothing else (the customer's);
  tenant tokens read all the tenant's orders.
* **Scheduling.** One order at a time (a lock): the bookings of every operation not done are
  read, the new order is planned around them (:mod:`millnet.orders.schedule`) and written in
  one transaction, so two orders never book the same time of a line. The promised date is the
  planned end of the last operation.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from millnet.errors import MillnetError, NotFound
from millnet.model import AssetKind
from millnet.orders.catalog import (
    ConfigurationRefused,
    Operation,
    ProductDefinition,
    check_selection,
)
from millnet.orders.schedule import Job, LineCalendar, Step, plan_job
from millnet.orders.store import NewOperation, OrderRecord, OrderStore
from millnet.registry import Asset, Registry

log = logging.getLogger(__name__)

FOLLOW_PREFIX = "mno_"
MAX_QUANTITY = 1_000_000
#: (identifier, status URL) -> None: registers the handle; blocking.
Registrar = Callable[[str, str], None]


def follow_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Placed:
    order: OrderRecord
    follow_token: str


class OrderService:
    def __init__(self, store: OrderStore, registry: Registry, *,
                 node_prefix: str | None = None) -> None:
        self.store = store
        self.registry = registry
        self.node_prefix = node_prefix
        #: set once the identifier service runs (``millnet.ordering``)
        self.registrar: Registrar | None = None
        #: identifier -> the order's status URL (set once the API listens)
        self.status_url: Callable[[str], str] | None = None
        self._lock = threading.Lock()

    def prefix(self, tenant_id: int) -> str:
        own = self.registry.identifier_prefixes(tenant_id)
        return own[0] if own else (self.node_prefix or "local")

    def define(self, tenant_id: int, product: ProductDefinition) -> bool:
        """Store ``product`` (its lines must exist); True if it is new."""
        for op in product.routing:
            self._line(tenant_id, op, "routing")
        return self.store.put_product(tenant_id, product)

    def _line(self, tenant_id: int, op: Operation, field: str) -> Asset:
        tenant = self.registry.get_tenant(tenant_id)
        for path in (op.line, f"{tenant.name}/{op.line}"):
            try:
                asset = self.registry.find_asset(tenant_id, path)
            except NotFound:
                continue
            if asset.kind is AssetKind.LINE:
                return asset
        raise ConfigurationRefused(f"operation {op.id}: no line {op.line!r} in the plant",
                                   field)

    def place(self, tenant_id: int, product_name: str, options: dict[str, str], quantity: int,
              customer: str | None = None, now_s: float | None = None) -> Placed:
        """Check, schedule and record an order; :class:`ConfigurationRefused` names what is
        wrong with it."""
        try:
            product = self.store.get_product(tenant_id, product_name)
        except NotFound:
            raise ConfigurationRefused(f"unknown product {product_name!r}", "product") from None
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ConfigurationRefused(f"quantity must be from 1 to {MAX_QUANTITY}", "quantity")
        configured = check_selection(product, options)
        lines = [self._line(tenant_id, op, "product").id for op in configured.routing]
        token = FOLLOW_PREFIX + secrets.token_urlsafe(32)
        prefix = self.prefix(tenant_id)
        with self._lock:
            now = time.time() if now_s is None else now_s
            release = now + configured.lead_time_s
            calendar = LineCalendar(self.store.bookings(now))
            slots = plan_job(calendar, Job(0, release, tuple(
                Step(line, op.cycle_s * quantity)
                for line, op in zip(lines, configured.routing, strict=True))))
            order = self.store.insert_order(
                tenant_id, prefix, product.name, quantity, configured.selection, customer,
                follow_hash(token), configured.lead_time_s, release,
                [NewOperation(op.id, slot.line, op.cycle_s, slot.start_s, slot.end_s)
                 for op, slot in zip(configured.routing, slots, strict=True)])
        self._register(order.identifier)
        return Placed(order, token)

    def _register(self, identifier: str) -> None:
        if self.registrar is None or self.status_url is None:
            return
        try:
            self.registrar(identifier, self.status_url(identifier))
        except MillnetError as exc:  # the order stands; its handle can be registered again
            log.warning("orders: %s not registered with the identifier service: %s",
                        identifier, exc)

    def get(self, identifier: str) -> OrderRecord:
        return self.store.get_order(identifier)

    def follows(self, identifier: str, token: str) -> bool:
        """Whether ``token`` is the follow token of the order ``identifier``."""
        found = self.store.follow_hash(identifier)
        return found is not None and hmac.compare_digest(found[1], follow_hash(token))
