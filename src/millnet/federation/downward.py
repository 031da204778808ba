"""Handlers of what a parent sends down: ``advisory``, ``order`` and ``policy``.

They store what arrived (idempotently, like the report handlers) and leave the reactions to
the caller, through ``after_*`` callbacks run in the same transaction: an enterprise matches an
advisory against its inventory and enqueues ``advisory.match``; a secondary relays advisories
and orders to its children (:func:`~millnet.federation.advisories.relay_messages`,
:func:`~millnet.federation.orders.relay_order`), all on the same connection, so the outbox rows
commit with the message's "applied" mark or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from millnet.errors import InvalidInput
from millnet.federation import advisories, orders
from millnet.federation.forwarding import apply_policy
from millnet.federation.inventory import ProbeHost, inventory_snapshot, registry_devices
from millnet.federation.reports import Handler

AfterAdvisory = Callable[[Connection, advisories.Advisory], None]
AfterOrder = Callable[[Connection, orders.Order], None]
Enqueue = Callable[[Connection, str, dict[str, Any]], None]


def answer_advisories(enqueue: Enqueue,
                      hosts: Callable[[], list[ProbeHost]] = list) -> AfterAdvisory:
    """An enterprise's reaction to a new advisory: match it against the inventory (registry
    devices and the probe's hosts) and enqueue the ``advisory.match`` answer, even when
    nothing matched (the issuer then knows this enterprise checked)."""

    def answer(conn: Connection, advisory: advisories.Advisory) -> None:
        inventory = inventory_snapshot(registry_devices(conn), hosts())
        found = advisories.match_advisory(advisory, inventory)
        enqueue(conn, "advisory.match", advisories.match_reply(advisory.id, found))

    return answer


def apply_advisory(conn: Connection, sender: str, origin: str, body: Any,
                   created_at: datetime, after: AfterAdvisory | None = None) -> None:
    """Store an advisory from the parent; ``after`` runs only the first time."""
    advisory = advisories.parse_advisory(body)
    issuer = body.get("issuer") if isinstance(body.get("issuer"), str) else origin
    if advisories.save_advisory(conn, advisory, issuer or sender, sender, created_at) and after:
        after(conn, advisory)


def apply_order(conn: Connection, sender: str, origin: str, body: Any, created_at: datetime,
                self_node_id: str | None = None, after: AfterOrder | None = None) -> None:
    """Store an order from the parent. An enterprise (``self_node_id`` given) keeps only its
    own target, marked ``received``; it refuses an order that does not name it."""
    named = isinstance(body, dict) and "issuer" in body
    order = orders.parse_order(body, issuer=None if named else origin)
    if self_node_id is not None and self_node_id not in order.targets:
        raise InvalidInput(f"the order does not name this node ({self_node_id})", "targets")
    only = [self_node_id] if self_node_id is not None else None
    if not orders.create_order(conn, order, created_at, only_targets=only):
        return
    if self_node_id is not None:
        orders.transition(conn, order.id, self_node_id, "received", "millnet",
                          f"received from {sender}", created_at)
    if after is not None:
        after(conn, order)


def downward_handlers(self_node_id: str | None = None,
                      after_advisory: AfterAdvisory | None = None,
                      after_order: AfterOrder | None = None) -> dict[str, Handler]:
    """The handlers of the downward kinds, for :func:`reports.register_handlers`'s ``extra``
    (``self_node_id`` on an enterprise node, None on a secondary)."""

    def advisory(conn: Connection, sender: str, origin: str, body: Any,
                 created_at: datetime) -> None:
        apply_advisory(conn, sender, origin, body, created_at, after_advisory)

    def order(conn: Connection, sender: str, origin: str, body: Any,
              created_at: datetime) -> None:
        apply_order(conn, sender, origin, body, created_at, self_node_id, after_order)

    return {"advisory": advisory, "order": order, "policy": apply_policy}


SendTo = Callable[[Connection, str, str, dict[str, Any]], None]


def relay_downward(send: SendTo, children: Callable[[Connection], list[advisories.Child]],
                   routes: Callable[[Connection], Mapping[str, str]],
                   ) -> tuple[AfterAdvisory, AfterOrder]:
    """A secondary's reactions: pass a new advisory to the children it concerns and a new
    order to the children leading to its targets (``send(conn, child, kind, body)``)."""

    def advisory(conn: Connection, adv: advisories.Advisory) -> None:
        for child, kind, body in advisories.relay_messages(adv, children(conn)):
            send(conn, child, kind, body)

    def order(conn: Connection, o: orders.Order) -> None:
        for child, kind, body in orders.relay_order(o, routes(conn)):
            send(conn, child, kind, body)

    return advisory, order
