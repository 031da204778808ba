"""What ``millnet demo`` shows of personalized customization (issue 15): the configurable pump
of ``demo_products.toml`` is defined once its lines exist (they are created by their machines'
first data), then a stream of customized orders is placed, one every :data:`EVERY_S` seconds;
now and then a configuration that breaks a rule, refused with the rule. The simulated lines'
part counters advance the orders (the node's order tracker); a table of the latest orders is
printed every :data:`TABLE_EVERY_S` seconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from millnet.node import Node
from millnet.orders.catalog import ConfigurationRefused, ProductDefinition
from millnet.orders.files import load_product_file
from millnet.orders.service import OrderService

PRODUCTS_FILE = Path(__file__).with_name("demo_products.toml")
EVERY_S = 15.0
TABLE_EVERY_S = 60.0
#: (motor, seal, coating) the demo's customers ask for; the last two break a rule.
CONFIGURATIONS = [
    ("7.5kW", "NBR", "none"), ("7.5kW", "EPDM", "epoxy-food"), ("5.5kW", "NBR", "epoxy"),
    ("11kW", "SiC", "epoxy"), ("7.5kW", "SiC", "none"), ("5.5kW", "EPDM", "none"),
    ("11kW", "NBR", "none"), ("5.5kW", "EPDM", "epoxy-food"),
]


async def _define(service: OrderService, tenant_id: int, product: ProductDefinition) -> None:
    """Define the product as soon as its lines exist."""
    while True:
        try:
            await asyncio.to_thread(service.define, tenant_id, product)
            return
        except ConfigurationRefused:  # a line has not reported yet
            await asyncio.sleep(1.0)


async def order_stream(console: Console, node: Node, *, every_s: float = EVERY_S) -> None:
    """Place the demo's orders until cancelled."""
    assert node.ordering is not None
    service = node.ordering.service
    product = load_product_file(PRODUCTS_FILE)[0]
    await _define(service, node.tenant_id, product)
    console.print(f"orders: product {product.name} defined (options motor, seal, coating; "
                  f"{len(product.rules)} rules); an order every {every_s:.0f} s")
    loop = asyncio.get_running_loop()
    table_at = loop.time()
    n = 0
    while True:
        motor, seal, coating = CONFIGURATIONS[n % len(CONFIGURATIONS)]
        n += 1
        options = {"motor": motor, "seal": seal, "coating": coating}
        try:
            placed = await asyncio.to_thread(service.place, node.tenant_id, product.name,
                                             options, 4 + n * 7 % 13, f"demo-{n:04d}")
        except ConfigurationRefused as exc:
            console.print(f"orders: {motor}/{seal}/{coating} refused: {exc}", soft_wrap=True)
        else:
            order = placed.order
            console.print(f"orders: {order.identifier} {order.quantity} x {motor}/{seal}/"
                          f"{coating} promised {_clock(order.promised_s)}", soft_wrap=True)
        if loop.time() - table_at >= TABLE_EVERY_S:
            table_at = loop.time()
            console.print(await asyncio.to_thread(orders_table, service, node.tenant_id))
        await asyncio.sleep(every_s)


def _clock(seconds: float | None) -> str:
    return "-" if seconds is None else f"{datetime.fromtimestamp(seconds, UTC):%H:%M:%S}"


def orders_table(service: OrderService, tenant_id: int, last: int = 8) -> Table:
    """The latest orders: status, the operation being worked, counts, promised and actual end
    (blocking)."""
    orders = service.store.list_orders(tenant_id, after=0, limit=10_000)[-last:]
    prefix = orders[0].identifier.rsplit("/", 1)[0] + "/" if orders else ""
    table = Table(title=f"customized orders (latest; {prefix}...)")
    for column in ("order", "configuration", "status", "operation", "done", "scrap",
                   "promised", "finished"):
        table.add_column(column)
    for o in orders:
        current = next((op for op in o.operations if op.status != "done"), None)
        table.add_row(o.identifier.rsplit("/", 1)[1], "/".join(o.selection.values()), o.status,
                      f"{current.name} ({current.good}/{o.quantity})" if current else "-",
                      f"{o.operations[-1].good}/{o.quantity}",
                      str(sum(op.scrap for op in o.operations)), _clock(o.promised_s),
                      _clock(o.finished_s))
    return table
