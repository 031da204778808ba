"""The children registry of a parent node: who is enrolled, with which key, how it is doing.

Health is by the age of the last verified exchange (every exchange is a heartbeat): ``healthy``
within ``late_after_s``, ``late`` until ``lost_after_s``, then ``lost`` (``never`` before the
first exchange). A secondary speaks for the enterprises enrolled under it: it reports them in
``federation.children`` messages, kept in ``federation_origins``; :func:`allowed_origins` is
what the parent checks every forwarded message's ``origin`` against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, delete, insert, select, update

from millnet.db.sqlstore import SqlStore
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.federation.inbox import BATCH_CACHE, PeerInfo, batch_cache
from millnet.federation.schema import federation_children as children
from millnet.federation.schema import federation_inbox_state as inbox_state
from millnet.federation.schema import federation_nonces as nonces
from millnet.federation.schema import federation_origins as origins
from millnet.federation.schema import federation_outbox as outbox
from millnet.federation.schema import federation_outbox_state as outbox_state
from millnet.federation.settings import FederationSection
from millnet.protocols.federation import NODE_ID_RE, LinkStats, Message

CHILDREN_KIND = "federation.children"
_ENTRY_FIELDS = ("node_id", "role", "region", "sector", "prefix")


@dataclass(frozen=True, slots=True)
class Child:
    node_id: str
    role: str
    region: str
    sector: str
    prefix: str
    public_key: bytes
    enrolled_at: datetime
    last_seen: datetime | None
    status: str  # healthy | late | lost | never
    applied_up: int  # highest upward seq applied here
    rejected: int  # upward messages rejected
    down_depth: int  # downward messages waiting for the child's ack
    down_oldest_age_s: float
    up_depth: int  # the child's own upward backlog, as it last reported it
    up_oldest_age_s: float
    up_refused: int  # messages the child refused because its outbox was full

    @property
    def peer(self) -> PeerInfo:
        return PeerInfo(self.node_id, self.role, self.region, self.sector, self.prefix)


def health(last_seen: datetime | None, now: datetime, settings: FederationSection) -> str:
    if last_seen is None:
        return "never"
    age = (now - last_seen).total_seconds()
    if age <= settings.late_after_s:
        return "healthy"
    return "late" if age <= settings.lost_after_s else "lost"


def allowed_origins(conn: Connection, sender: str) -> set[str]:
    """The origins ``sender`` may speak for: itself and the nodes it reported under it."""
    rows = conn.execute(select(origins.c.origin).where(origins.c.child == sender)).scalars()
    return {sender, *rows}


def sender_origins(conn: Connection, sender: str) -> set[str]:
    """:func:`allowed_origins`, read once per batch being applied."""
    cache = batch_cache(conn)
    key = ("origins", sender)
    if key not in cache:
        cache[key] = allowed_origins(conn, sender)
    found: set[str] = cache[key]
    return found


def origin_allowed(conn: Connection, sender: PeerInfo, origin: str) -> bool:
    if origin == sender.node_id:
        return True
    if sender.role != "secondary":
        return False
    return origin in sender_origins(conn, sender.node_id)


def apply_children_report(conn: Connection, sender: PeerInfo, message: Message) -> None:
    """Handler of ``federation.children``: the complete list of the sender's children."""
    if sender.role != "secondary":
        raise InvalidInput("only a secondary node has children to report", "kind")
    conn.info.pop(BATCH_CACHE, None)  # who speaks for whom changes here
    entries = message.body.get("children")
    if not isinstance(entries, list) or len(entries) > 100_000:
        raise InvalidInput("children is a list of at most 100,000 entries", "children")
    rows = [_entry(e, i) for i, e in enumerate(entries)]
    names = {r["origin"] for r in rows}
    if len(names) != len(rows):
        raise InvalidInput("a child is listed twice", "children")
    if names:
        taken = conn.execute(select(origins.c.origin, origins.c.child).where(
            origins.c.origin.in_(names), origins.c.child != sender.node_id)).first()
        if taken is not None or names & _enrolled_here(conn, names):
            raise Conflict(f"{taken.origin if taken else 'a listed node'} is not "
                           f"{sender.node_id}'s to report")
    conn.execute(delete(origins).where(origins.c.child == sender.node_id))
    if rows:
        conn.execute(insert(origins), [{**r, "child": sender.node_id} for r in rows])


def _enrolled_here(conn: Connection, names: set[str]) -> set[str]:
    return set(conn.execute(select(children.c.node_id)
                            .where(children.c.node_id.in_(names))).scalars())


def _entry(entry: Any, index: int) -> dict[str, str]:
    where = f"children[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInput("an entry is an object", where)
    values = {name: entry.get(name, "") for name in _ENTRY_FIELDS}
    if not all(isinstance(v, str) and len(v) <= 128 for v in values.values()):
        raise InvalidInput("fields are strings of at most 128 characters", where)
    if not NODE_ID_RE.match(values["node_id"]) or values["role"] != "enterprise":
        raise InvalidInput("node_id must be a node id and role 'enterprise'", where)
    if len(values["region"]) > 6 or len(values["sector"]) > 5:
        raise InvalidInput("region or sector too long", where)
    values["origin"] = values.pop("node_id")
    return values


class Children(SqlStore):
    """The children registry (parent side); public keys are cached in memory."""

    label: ClassVar[str] = "federation children"

    def __init__(self, engine: Engine, settings: FederationSection) -> None:
        super().__init__(engine)
        self.settings = settings
        self._keys: dict[str, tuple[bytes, PeerInfo]] = {}
        self._lock = threading.Lock()

    def lookup(self, node_id: str) -> tuple[bytes, PeerInfo] | None:
        """The key and description of an enrolled child (cached; None when unknown)."""
        with self._lock:
            hit = self._keys.get(node_id)
        if hit is not None:
            return hit
        row = self._run(lambda c: c.execute(
            select(children).where(children.c.node_id == node_id)).first())
        if row is None:
            return None
        found = (bytes(row.public_key),
                 PeerInfo(row.node_id, row.role, row.region, row.sector, row.prefix))
        with self._lock:
            self._keys[node_id] = found
        return found

    def forget(self, node_id: str) -> None:
        with self._lock:
            self._keys.pop(node_id, None)

    def seen(self, conn: Connection, node_id: str, stats: LinkStats | None) -> None:
        values: dict[str, Any] = {"last_seen": datetime.now(UTC)}
        if stats is not None:
            values.update(child_depth=stats.depth, child_bytes=stats.bytes,
                          child_oldest_age_ms=stats.oldest_age_ms, child_refused=stats.refused)
        conn.execute(update(children).where(children.c.node_id == node_id).values(**values))

    def all(self) -> list[Child]:
        return self._run(lambda conn: self._read(conn, None))

    def get(self, node_id: str) -> Child:
        found = self._run(lambda conn: self._read(conn, node_id))
        if not found:
            raise NotFound(f"no child {node_id!r} is enrolled")
        return found[0]

    def remove(self, node_id: str, also: Callable[[Connection], None] | None = None) -> None:
        """Forget a child and everything waiting for it (it may enroll again with a token);
        ``also`` runs in the same transaction (a secondary's report of its children)."""
        def work(conn: Connection) -> None:
            if not conn.execute(delete(children).where(children.c.node_id == node_id)).rowcount:
                raise NotFound(f"no child {node_id!r} is enrolled")
            for table, column in ((origins, origins.c.child), (outbox, outbox.c.peer),
                                  (outbox_state, outbox_state.c.peer),
                                  (inbox_state, inbox_state.c.peer), (nonces, nonces.c.peer)):
                conn.execute(delete(table).where(column == node_id))
            if also is not None:
                also(conn)
        self._run(work, write=True)
        self.forget(node_id)

    def _read(self, conn: Connection, node_id: str | None) -> list[Child]:
        query = (select(children, inbox_state.c.applied_seq, inbox_state.c.rejected,
                        outbox_state.c.depth)
                 .outerjoin(inbox_state, inbox_state.c.peer == children.c.node_id)
                 .outerjoin(outbox_state, outbox_state.c.peer == children.c.node_id)
                 .order_by(children.c.node_id))
        if node_id is not None:
            query = query.where(children.c.node_id == node_id)
        now = datetime.now(UTC)
        found = []
        for r in conn.execute(query):
            oldest = conn.execute(select(outbox.c.created_at_ms).where(
                outbox.c.peer == r.node_id).order_by(outbox.c.seq).limit(1)).scalar()
            age = max(0.0, now.timestamp() - oldest / 1000) if oldest is not None else 0.0
            found.append(Child(
                r.node_id, r.role, r.region, r.sector, r.prefix, bytes(r.public_key),
                r.enrolled_at, r.last_seen, health(r.last_seen, now, self.settings),
                int(r.applied_seq or 0), int(r.rejected or 0), int(r.depth or 0), age,
                int(r.child_depth), r.child_oldest_age_ms / 1000, int(r.child_refused)))
        return found
