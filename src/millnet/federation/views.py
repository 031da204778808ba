"""What the federation API and CLI act on: one object over the node's database that reads the
situation, advisories and orders and issues new ones, sending what must go down or up through
callables the composition root (``node.py``) wires to the link layer's outboxes.

* ``send(conn, peer, kind, body, origin)`` enqueues one message for ``peer`` on ``conn`` (the
  outbox row commits with the change that caused it); the parent is named :data:`PARENT`;
* ``children(conn)`` lists the node's direct children (:class:`~advisories.Child`);
* ``routes(conn)`` maps every enterprise under this node to the child it is reached through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine

from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, InvalidInput, PermissionDenied
from millnet.federation import advisories, orders
from millnet.federation.situation import SituationQuery, situation

PARENT: Final = "parent"
ISSUERS: Final = ("national", "secondary")
Send = Callable[[Connection, str, str, dict[str, Any], str | None], None]


def _no_children(conn: Connection) -> list[advisories.Child]:
    return []


def _no_routes(conn: Connection) -> dict[str, str]:
    return {}


class FederationViews(SqlStore):
    label = "federation reports"

    def __init__(self, engine: Engine, *, node_id: str, role: str, send: Send,
                 children: Callable[[Connection], list[advisories.Child]] = _no_children,
                 routes: Callable[[Connection], Mapping[str, str]] = _no_routes) -> None:
        super().__init__(engine)
        self.node_id, self.role = node_id, role
        self._send, self._children, self._routes = send, children, routes

    def situation(self, q: SituationQuery, now: datetime | None = None) -> dict[str, Any]:
        return self._run(lambda conn: situation(conn, q, now).to_body())

    def advisories(self, limit: int = 200) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            return [{**a.to_body(), "issuer": issuer}
                    for a, issuer in advisories.list_advisories(conn, limit)]
        return self._run(read)

    def _issuing(self, what: str) -> None:
        if self.role not in ISSUERS:
            raise PermissionDenied(f"only national and secondary nodes issue {what}")

    def create_advisory(self, body: Any) -> dict[str, Any]:
        """Store a new advisory issued here and send it to the children it concerns."""
        self._issuing("advisories")
        advisory = advisories.parse_advisory(body)

        def write(conn: Connection) -> dict[str, Any]:
            now = datetime.now(UTC)
            if not advisories.save_advisory(conn, advisory, self.node_id, None, now):
                raise Conflict(f"advisory {advisory.id!r} exists")
            for child, kind, message in advisories.relay_messages(
                    advisory, self._children(conn)):
                self._send(conn, child, kind, {**message, "issuer": self.node_id}, None)
            return {**advisory.to_body(), "issuer": self.node_id}
        return self._run(write, write=True)

    def orders(self, now: datetime | None = None) -> list[dict[str, Any]]:
        at = now or datetime.now(UTC)
        return self._run(lambda conn: [_order_body(o, s)
                                       for o, s in orders.list_orders(conn, at)])

    def order(self, order_id: str, now: datetime | None = None) -> dict[str, Any]:
        at = now or datetime.now(UTC)

        def read(conn: Connection) -> dict[str, Any]:
            body = _order_body(orders.get_order(conn, order_id),
                               orders.target_statuses(conn, order_id, at))
            body["audit"] = [{"target": e.target, "from": e.from_state, "to": e.to_state,
                              "actor": e.actor, "comment": e.comment, "at": e.at.isoformat()}
                             for e in orders.audit_trail(conn, order_id)]
            return body
        return self._run(read)

    def create_order(self, body: Any) -> dict[str, Any]:
        """Issue an order to named enterprises under this node, sent down to each."""
        self._issuing("orders")
        order = orders.parse_order(body, issuer=self.node_id)

        def write(conn: Connection) -> dict[str, Any]:
            routes = self._routes(conn)
            unknown = sorted(set(order.targets) - set(routes))
            if unknown:
                raise InvalidInput(f"{unknown[0]!r} is not an enterprise under this node",
                                   "targets")
            if not orders.create_order(conn, order, datetime.now(UTC)):
                raise Conflict(f"order {order.id!r} exists")
            for child, kind, message in orders.relay_order(order, routes):
                self._send(conn, child, kind, message, None)
            return _order_body(order, orders.target_statuses(conn, order.id,
                                                             datetime.now(UTC)))
        return self._run(write, write=True)

    def update_status(self, order_id: str, state: str, actor: str,
                      comment: str = "") -> dict[str, Any]:
        """This enterprise's progress on an order, audited and reported to the issuer."""
        if self.role != "enterprise":
            raise PermissionDenied("only the enterprise an order names updates its status")

        def write(conn: Connection) -> dict[str, Any]:
            now = datetime.now(UTC)
            orders.transition(conn, order_id, self.node_id, state, actor, comment, now)
            self._send(conn, PARENT, "order.status",
                       orders.status_body(order_id, state, actor, comment, now), None)
            return _order_body(orders.get_order(conn, order_id),
                               orders.target_statuses(conn, order_id, now))
        return self._run(write, write=True)

    def check_overdue(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """The periodic check: targets newly overdue (each reported once)."""
        at = now or datetime.now(UTC)
        return self._run(lambda conn: orders.flag_overdue(conn, at), write=True)


def _order_body(order: orders.Order, statuses: list[orders.TargetStatus]) -> dict[str, Any]:
    return {**order.to_body(), "status": [
        {"target": s.target, "state": s.state, "updated_at": s.updated_at.isoformat(),
         "overdue": s.overdue} for s in statuses]}
