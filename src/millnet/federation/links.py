"""``FederationLinks``: the federation link layer of one node, composed.

A node has an upward link unless it is the national node (``outbox_up``, ``run()``), and
children unless it is an enterprise (``children``, ``outbox_down(child)``, the parent service
and its routes). One :class:`Inbox` serves both directions: other modules register the kinds
they handle on ``inbox`` before the node starts.

A secondary reports its children upward (``federation.children``, a critical kind) in the
transaction that enrolls one, which is what lets the national node check that a secondary
speaks only for its own enterprises.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import Connection, Engine, select

from millnet.db import migrate
from millnet.db.engine import create_db_engine
from millnet.federation.children import (
    CHILDREN_KIND,
    Children,
    apply_children_report,
)
from millnet.federation.identity import NodeIdentity
from millnet.federation.inbox import Inbox, RejectHook
from millnet.federation.link import ChildLink
from millnet.federation.outbox import Outbox, OutboxLimits
from millnet.federation.schema import UP, federation_children
from millnet.federation.server import ParentService, federation_app, federation_router
from millnet.federation.settings import FederationSection

ROLES = ("enterprise", "secondary", "national")


def limits_of(settings: FederationSection) -> OutboxLimits:
    return OutboxLimits(settings.outbox_max_messages, settings.outbox_max_bytes,
                        settings.outbox_hard_max_messages, settings.outbox_hard_max_bytes,
                        frozenset(settings.critical_kinds))


class FederationLinks:
    """Everything of the link layer one node runs (see the module docstring)."""

    def __init__(self, settings: FederationSection, db: Engine | str, identity: NodeIdentity,
                 role: str, *, on_rejected: RejectHook | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"no federation role {role!r}")
        if isinstance(db, str):
            db = create_db_engine(db)
            migrate.upgrade(db)
        self.engine = db
        self.settings = settings
        self.identity = identity
        self.role = role
        self.inbox = Inbox(on_rejected)
        self._limits = limits_of(settings)
        self._down: dict[str, Outbox] = {}
        self._lock = threading.Lock()
        self.link: ChildLink | None = None
        self.outbox_up: Outbox | None = None
        if role != "national":
            self.outbox_up = Outbox(db, UP, identity.node_id, self._limits)
            self.link = ChildLink(db, identity, settings, self.outbox_up, self.inbox)
            self.outbox_up.wake = self.link.wake
        self.children = Children(db, settings)
        self.service = ParentService(
            db, identity, role, settings, self.children, self.inbox, self.outbox_down,
            on_enrolled=self._report_children if role == "secondary" else None)
        if role == "national":
            self.inbox.register(CHILDREN_KIND, apply_children_report)

    def outbox_down(self, child_id: str) -> Outbox:
        """The downward outbox to an enrolled child (parent side)."""
        with self._lock:
            box = self._down.get(child_id)
        if box is None:
            box = Outbox(self.engine, child_id, self.identity.node_id, self._limits)
            with self._lock:
                box = self._down.setdefault(child_id, box)
        return box

    def remove_child(self, node_id: str) -> None:
        """Forget an enrolled child; a secondary tells its parent in the same transaction."""
        self.children.remove(node_id, also=self.service.on_enrolled)

    def _report_children(self, conn: Connection) -> None:
        assert self.outbox_up is not None
        rows = conn.execute(select(federation_children).order_by(
            federation_children.c.node_id)).all()
        report = [{"node_id": r.node_id, "role": r.role, "region": r.region,
                   "sector": r.sector, "prefix": r.prefix} for r in rows]
        self.outbox_up.enqueue(CHILDREN_KIND, {"children": report}, conn)

    def router(self, admin: Any = None) -> APIRouter:
        """The routes under /api/v1/federation; ``admin`` is the platform's admin dependency
        (``require(Role.ADMIN)``) for the token and children routes."""
        return federation_router(self.service, self.engine, admin)

    def app(self, admin: Any = None) -> FastAPI:
        return federation_app(self.router(admin))

    async def run(self) -> None:
        """The sender loop (until cancelled); returns at once on a national node."""
        if self.link is not None:
            await self.link.run()

    def status(self) -> dict[str, Any]:
        """Figures for the node's health page and metrics."""
        out: dict[str, Any] = {"role": self.role, "node_id": self.identity.node_id,
                               "rejections": dict(self.inbox.rejections)}
        if self.link is not None and self.outbox_up is not None:
            m = self.link.metrics
            box = self.outbox_up.status()
            out["up"] = {"sent": m.sent, "acked": m.acked, "received": m.received,
                         "retries": m.retries, "exchanges": m.exchanges,
                         "last_error": m.last_error, "last_ok": m.last_ok,
                         "depth": box.depth, "bytes": box.bytes,
                         "oldest_age_s": box.oldest_age_s, "refused": box.refused}
        if self.role != "enterprise":
            out["children"] = {"exchanges": self.service.exchanges,
                               "applied": self.service.applied}
        return out

    def close(self) -> None:
        self.engine.dispose()
