"""Durable, bounded outboxes: messages wait here until the peer acknowledges them.

A seq is assigned at enqueue, in the caller's transaction when the caller passes its
connection: the message exists exactly when the caller's own write does. Rows are deleted only
when acknowledged. ``federation_outbox_state`` keeps each outbox's last seq, depth and bytes,
so enqueue checks the bounds with one row read and an empty outbox never reuses a seq.

When full (``outbox_max_messages`` / ``outbox_max_bytes``), kinds not listed as critical are
refused: ``enqueue`` returns None, the refusal is counted in the state row and the child's
every request carries that count, so the parent knows data was shed. Critical kinds (incidents,
acknowledgements of orders) are accepted up to the hard bounds; beyond them enqueue raises
``RejectedMessage("outbox_full")``.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, delete, event, func, insert, select, update

from millnet.db.sqlstore import SqlStore
from millnet.errors import InvalidInput, RejectedMessage
from millnet.federation.schema import federation_outbox as box
from millnet.federation.schema import federation_outbox_state as state
from millnet.protocols.federation import KIND_PATTERN, NODE_ID_RE, encode_body

_KIND_RE = re.compile(KIND_PATTERN)


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_messages: int
    max_bytes: int
    hard_max_messages: int
    hard_max_bytes: int
    critical_kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    created_at_ms: int
    kind: str
    origin: str
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    depth: int
    bytes: int
    oldest_age_s: float
    refused: int
    last_seq: int


def ensure_state(conn: Connection, peer: str) -> None:
    """Create the position row of ``peer``'s outbox unless it exists (in a write transaction)."""
    if conn.execute(select(state.c.peer).where(state.c.peer == peer)).first() is None:
        conn.execute(insert(state).values(peer=peer, last_seq=0, depth=0, bytes=0, refused=0))


class Outbox(SqlStore):
    """The outbox of messages to one peer."""

    label: ClassVar[str] = "federation outbox"

    def __init__(self, engine: Engine, peer: str, origin: str, limits: OutboxLimits,
                 wake: Callable[[], None] | None = None) -> None:
        super().__init__(engine)
        self.peer = peer
        self.origin = origin
        self.limits = limits
        self.wake = wake
        # Connections whose commit already wakes the sender (one hook per transaction).
        self._hooked: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._hook_lock = threading.Lock()
        self._run(lambda conn: ensure_state(conn, peer), write=True)

    def enqueue(self, kind: str, body: dict[str, Any], conn: Connection | None = None,
                origin: str | None = None) -> int | None:
        """Queue one message; its seq, or None when refused because the outbox is full."""
        seqs = self.enqueue_many([(kind, body, origin)], conn)
        return seqs[0]

    def enqueue_many(self, items: Iterable[tuple[str, dict[str, Any], str | None]],
                     conn: Connection | None = None) -> list[int | None]:
        """Queue ``(kind, body, origin)`` items in one transaction (the caller's when ``conn``
        is given); per item its seq or None (refused, outbox full)."""
        now_ms = int(time.time() * 1000)
        rows = [self._row(kind, body, origin) for kind, body, origin in items]
        if conn is not None:
            seqs = self._enqueue(conn, rows, now_ms)
            self._wake_on_commit(conn)
            return seqs
        seqs = self._run(lambda c: self._enqueue(c, rows, now_ms), write=True)
        if self.wake is not None:
            self.wake()
        return seqs

    def _row(self, kind: str, body: dict[str, Any], origin: str | None) -> tuple[str, str, bytes]:
        if not _KIND_RE.match(kind):
            raise InvalidInput("a kind is a lowercase word of at most 64 characters", "kind")
        if not isinstance(body, dict):
            raise InvalidInput("a message body is a JSON object", "body")
        origin = self.origin if origin is None else origin
        if not NODE_ID_RE.match(origin):
            raise InvalidInput("not a node id", "origin")
        try:
            return kind, origin, encode_body(body)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(f"not JSON: {exc}", "body") from exc

    def _enqueue(self, conn: Connection, rows: list[tuple[str, str, bytes]],
                 now_ms: int) -> list[int | None]:
        pos = conn.execute(select(state.c.last_seq, state.c.depth, state.c.bytes)
                           .where(state.c.peer == self.peer)).one()
        last, depth, size = int(pos.last_seq), int(pos.depth), int(pos.bytes)
        seqs: list[int | None] = []
        values: list[dict[str, Any]] = []
        refused = 0
        for kind, origin, body in rows:
            if not self._fits(kind, depth + 1, size + len(body)):
                seqs.append(None)
                refused += 1
                continue
            last, depth, size = last + 1, depth + 1, size + len(body)
            seqs.append(last)
            values.append({"peer": self.peer, "seq": last, "kind": kind, "origin": origin,
                           "body": body, "created_at_ms": now_ms})
        if values:
            conn.execute(insert(box), values)
        conn.execute(update(state).where(state.c.peer == self.peer).values(
            last_seq=last, depth=depth, bytes=size, refused=state.c.refused + refused))
        return seqs

    def _fits(self, kind: str, depth: int, size: int) -> bool:
        lim = self.limits
        if depth <= lim.max_messages and size <= lim.max_bytes:
            return True
        if kind not in lim.critical_kinds:
            return False
        if depth <= lim.hard_max_messages and size <= lim.hard_max_bytes:
            return True
        raise RejectedMessage("outbox_full", f"the outbox to {self.peer} is full even for "
                                             f"critical messages ({kind})")

    def _wake_on_commit(self, conn: Connection) -> None:
        if self.wake is None:
            return
        with self._hook_lock:
            if conn in self._hooked:
                return
            self._hooked.add(conn)
        wake = self.wake

        def after_commit(_conn: Connection) -> None:
            self._hooked.discard(conn)
            wake()

        event.listen(conn, "commit", after_commit, once=True)

    def pending(self, limit: int, max_bytes: int, after: int = 0) -> list[Pending]:
        """The oldest messages waiting (at least one when any waits, at most ``limit`` and
        about ``max_bytes`` of bodies)."""
        return self._run(lambda conn: self.read_pending(conn, limit, max_bytes, after))

    def read_pending(self, conn: Connection, limit: int, max_bytes: int,
                     after: int = 0) -> list[Pending]:
        """:meth:`pending` in the caller's transaction."""
        rows = conn.execute(
            select(box.c.seq, box.c.created_at_ms, box.c.kind, box.c.origin, box.c.body)
            .where(box.c.peer == self.peer, box.c.seq > after)
            .order_by(box.c.seq).limit(limit)).all()
        out: list[Pending] = []
        total = 0
        for r in rows:
            total += len(r.body)
            if out and total > max_bytes:
                break
            out.append(Pending(int(r.seq), int(r.created_at_ms), r.kind, r.origin,
                               bytes(r.body)))
        return out

    def ack(self, seq: int, conn: Connection | None = None) -> int:
        """Delete every message up to ``seq`` (the peer applied them); how many were."""
        if conn is not None:
            return self._ack(conn, seq)
        return self._run(lambda c: self._ack(c, seq), write=True)

    def _ack(self, conn: Connection, seq: int) -> int:
        where = (box.c.peer == self.peer, box.c.seq <= seq)
        count, size = conn.execute(
            select(func.count(), func.coalesce(func.sum(func.length(box.c.body)), 0))
            .where(*where)).one()
        if not count:
            return 0
        conn.execute(delete(box).where(*where))
        conn.execute(update(state).where(state.c.peer == self.peer).values(
            depth=state.c.depth - count, bytes=state.c.bytes - size))
        return int(count)

    def status(self) -> OutboxStatus:
        return self._run(self.read_status)

    def read_status(self, conn: Connection) -> OutboxStatus:
        """:meth:`status` in the caller's transaction."""
        pos = conn.execute(select(state).where(state.c.peer == self.peer)).one()
        oldest = conn.execute(select(box.c.created_at_ms).where(box.c.peer == self.peer)
                              .order_by(box.c.seq).limit(1)).scalar()
        age = max(0.0, time.time() - oldest / 1000) if oldest is not None else 0.0
        return OutboxStatus(int(pos.depth), int(pos.bytes), age, int(pos.refused),
                            int(pos.last_seq))
