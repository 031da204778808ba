"""Rectification orders: issued by a national or secondary node to named enterprises, tracked
per target through a small state machine, every change audited (who, when, comment).

The machine is the table :data:`TRANSITIONS` (h11's ``_state.py`` style)::

    issued -> received -> acknowledged -> in_progress -> done

with the shortcuts ``issued -> acknowledged`` and ``acknowledged -> done``. ``overdue`` is not a
stored state: a target is overdue while it is not ``done`` and the deadline has passed; queries
compute it, and :func:`flag_overdue` (a periodic check) stamps ``overdue_flagged_at`` once so a
notice is raised once. The enterprise updates its state through the API or CLI
(:func:`transition`), each update travelling up as ``order.status``; the issuer applies those
forward only (:func:`apply_status`), so a replayed or late message never moves a target back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.federation.advisories import check_id
from millnet.federation.report_schema import fed_order_audit, fed_order_targets, fed_orders

STATES: Final = ("issued", "received", "acknowledged", "in_progress", "done")
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "issued": frozenset({"received", "acknowledged"}),
    "received": frozenset({"acknowledged"}),
    "acknowledged": frozenset({"in_progress", "done"}),
    "in_progress": frozenset({"done"}),
    "done": frozenset(),
}
RANK: Final = {s: i for i, s in enumerate(STATES)}
MAX_TARGETS: Final = 1000


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    issuer: str
    targets: tuple[str, ...]
    title: str
    action: str
    deadline: datetime
    advisory_id: str | None = None

    def to_body(self) -> dict[str, Any]:
        return {"id": self.id, "issuer": self.issuer, "targets": list(self.targets),
                "title": self.title, "action": self.action,
                "deadline": self.deadline.isoformat(), "advisory_id": self.advisory_id}


@dataclass(frozen=True, slots=True)
class TargetStatus:
    target: str
    state: str
    updated_at: datetime
    overdue: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    target: str
    from_state: str
    to_state: str
    actor: str
    comment: str
    at: datetime


def check_transition(current: str, new: str) -> None:
    """Refuse a move the table does not allow, naming the allowed ones."""
    if new not in RANK:
        raise InvalidInput(f"unknown state {new!r} (one of {', '.join(STATES)})", "state")
    allowed = TRANSITIONS[current]
    if new not in allowed:
        names = ", ".join(sorted(allowed, key=RANK.__getitem__)) or "none (it is done)"
        raise Conflict(f"an order target in state {current} cannot move to {new}; "
                       f"allowed: {names}")


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"must be a non-empty string of at most {limit} characters", name)
    return value.strip()


def _time(body: Mapping[str, Any], name: str) -> datetime:
    raw = _text(body, name, 40)
    try:
        moment = datetime.fromisoformat(raw)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput("must be an ISO 8601 time", name) from None


def parse_order(body: Any, issuer: str | None = None) -> Order:
    """An order from an API request (``issuer`` given: this node) or a parent's message."""
    if not isinstance(body, dict):
        raise InvalidInput("an order is an object", "order")
    targets = body.get("targets")
    if (not isinstance(targets, list) or not 0 < len(targets) <= MAX_TARGETS
            or not all(isinstance(t, str) for t in targets)):
        raise InvalidInput(f"must list 1-{MAX_TARGETS} enterprise node ids", "targets")
    advisory = body.get("advisory_id")
    if advisory is not None and not isinstance(advisory, str):
        raise InvalidInput("must be an advisory id or null", "advisory_id")
    return Order(
        id=check_id(_text(body, "id", 64), "id"),
        issuer=issuer or _text(body, "issuer", 128),
        targets=tuple(sorted({check_id(t, "targets") for t in targets})),
        title=_text(body, "title", 255), action=_text(body, "action", 10_000),
        deadline=_time(body, "deadline"),
        advisory_id=check_id(advisory, "advisory_id") if advisory else None)


def create_order(conn: Connection, order: Order, now: datetime,
                 only_targets: Iterable[str] | None = None) -> bool:
    """Store an order with its targets at ``issued`` (``only_targets``: just those, as an
    enterprise keeps only itself); False when it is stored already."""
    if conn.execute(select(fed_orders.c.id).where(fed_orders.c.id == order.id)).first():
        return False
    conn.execute(insert(fed_orders).values(
        id=order.id, issuer=order.issuer, title=order.title, action=order.action,
        deadline=order.deadline, advisory_id=order.advisory_id, created_at=now))
    keep = set(order.targets) if only_targets is None else set(order.targets) & set(only_targets)
    for target in sorted(keep):
        conn.execute(insert(fed_order_targets).values(
            order_id=order.id, target=target, state="issued", updated_at=now))
        _audit(conn, order.id, target, "", "issued", order.issuer, "", now)
    return True


def _audit(conn: Connection, order_id: str, target: str, old: str, new: str, actor: str,
           comment: str, at: datetime) -> None:
    conn.execute(insert(fed_order_audit).values(
        order_id=order_id, target=target, from_state=old, to_state=new, actor=actor[:128],
        comment=comment[:2000], at=at))


def _current(conn: Connection, order_id: str, target: str) -> str:
    row = conn.execute(select(fed_order_targets.c.state).where(
        fed_order_targets.c.order_id == order_id, fed_order_targets.c.target == target)).first()
    if row is None:
        raise NotFound(f"order {order_id!r} has no target {target!r}")
    return str(row.state)


def _set(conn: Connection, order_id: str, target: str, state: str, at: datetime) -> None:
    conn.execute(update(fed_order_targets).where(
        fed_order_targets.c.order_id == order_id, fed_order_targets.c.target == target,
    ).values(state=state, updated_at=at))


def transition(conn: Connection, order_id: str, target: str, new: str, actor: str,
               comment: str, at: datetime) -> str:
    """Move one target to ``new`` as the machine allows (audited); the state it left."""
    current = _current(conn, order_id, target)
    check_transition(current, new)
    _set(conn, order_id, target, new, at)
    _audit(conn, order_id, target, current, new, actor, comment, at)
    return current


def status_body(order_id: str, state: str, actor: str, comment: str,
                at: datetime) -> dict[str, Any]:
    """The body of the ``order.status`` message an enterprise sends after a transition."""
    return {"order_id": order_id, "state": state, "actor": actor, "comment": comment,
            "at": at.isoformat()}


def apply_status(conn: Connection, target: str, body: Any) -> bool:
    """Apply a target's ``order.status`` at the issuer, forward only; whether it changed."""
    if not isinstance(body, dict):
        raise InvalidInput("an order status is an object", "body")
    order_id = _text(body, "order_id", 64)
    state = _text(body, "state", 16)
    if state not in RANK:
        raise InvalidInput(f"unknown state {state!r}", "state")
    at = _time(body, "at")
    actor, comment = _text(body, "actor", 128), str(body.get("comment", ""))[:2000]
    current = _current(conn, order_id, target)
    if RANK[state] <= RANK[current]:
        return False  # applied already, or older than what is known
    _set(conn, order_id, target, state, at)
    _audit(conn, order_id, target, current, state, f"{target}:{actor}", comment, at)
    return True


def get_order(conn: Connection, order_id: str) -> Order:
    row = conn.execute(select(fed_orders).where(fed_orders.c.id == order_id)).first()
    if row is None:
        raise NotFound(f"order {order_id!r} not found")
    targets = conn.execute(select(fed_order_targets.c.target).where(
        fed_order_targets.c.order_id == order_id)).scalars()
    return Order(row.id, row.issuer, tuple(sorted(targets)), row.title, row.action,
                 row.deadline, row.advisory_id)


def target_statuses(conn: Connection, order_id: str, now: datetime) -> list[TargetStatus]:
    deadline = get_order(conn, order_id).deadline
    rows = conn.execute(select(fed_order_targets).where(
        fed_order_targets.c.order_id == order_id).order_by(fed_order_targets.c.target))
    return [TargetStatus(r.target, r.state, r.updated_at, r.state != "done" and deadline < now)
            for r in rows]


def list_orders(conn: Connection, now: datetime,
                limit: int = 200) -> list[tuple[Order, list[TargetStatus]]]:
    ids = conn.execute(select(fed_orders.c.id).order_by(
        fed_orders.c.created_at.desc(), fed_orders.c.id).limit(limit)).scalars().all()
    return [(get_order(conn, i), target_statuses(conn, i, now)) for i in ids]


def audit_trail(conn: Connection, order_id: str) -> list[AuditEntry]:
    rows = conn.execute(select(fed_order_audit).where(
        fed_order_audit.c.order_id == order_id).order_by(fed_order_audit.c.id))
    return [AuditEntry(r.target, r.from_state, r.to_state, r.actor, r.comment, r.at)
            for r in rows]


def pending_targets(conn: Connection, now: datetime) -> list[tuple[str, str, str, bool]]:
    """(order id, target, state, overdue) of every target that has not acknowledged, and of
    every overdue one: what the situation view lists."""
    rows = conn.execute(select(
        fed_order_targets.c.order_id, fed_order_targets.c.target, fed_order_targets.c.state,
        fed_orders.c.deadline).join(fed_orders, fed_orders.c.id == fed_order_targets.c.order_id,
                                    ).order_by(fed_order_targets.c.order_id,
                                               fed_order_targets.c.target))
    out = []
    for r in rows:
        overdue = r.state != "done" and r.deadline < now
        if overdue or RANK[r.state] < RANK["acknowledged"]:
            out.append((r.order_id, r.target, r.state, overdue))
    return out


def flag_overdue(conn: Connection, now: datetime) -> list[tuple[str, str]]:
    """Stamp targets that became overdue since the last check; (order id, target) of each."""
    rows = conn.execute(select(fed_order_targets.c.order_id, fed_order_targets.c.target).join(
        fed_orders, fed_orders.c.id == fed_order_targets.c.order_id).where(
        fed_orders.c.deadline < now, fed_order_targets.c.state != "done",
        fed_order_targets.c.overdue_flagged_at.is_(None))).all()
    for r in rows:
        conn.execute(update(fed_order_targets).where(
            fed_order_targets.c.order_id == r.order_id, fed_order_targets.c.target == r.target,
        ).values(overdue_flagged_at=now))
    return [(r.order_id, r.target) for r in rows]


def relay_order(order: Order, routes: Mapping[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(child, kind, body) of the ``order`` messages a node sends down: one per child that is a
    target or leads to one (``routes`` maps an enterprise to the child it is reached through)."""
    children = sorted({routes[t] for t in order.targets if t in routes})
    return [(child, "order", order.to_body()) for child in children]
