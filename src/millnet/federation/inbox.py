"""Idempotent inbox: each message's effect is applied exactly once, in seq order.

A handler applies a message's effect on the connection it is given, inside the transaction
that records the message's seq as applied; both commit together or neither does. A message
whose seq is at or below the recorded one is a duplicate (acknowledged, skipped); a seq beyond
the next one is a gap, where applying stops (the sender resends from its outbox).

A handler that raises a millnet error for bad content has its effect rolled back (a savepoint
per message) and the message is recorded as *rejected*: its seq counts as applied, so one bad
message never blocks the link. Unknown kinds and origins the sender may not speak for are
rejected the same way. Database failures are not rejections: they abort the batch, which the
sender retries. Rejections are reported through ``on_rejected`` after the commit (the hook may
write to the database itself without waiting on this transaction's lock).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import OperationalError, StatementError

from millnet.errors import Conflict, MillnetError, RejectedMessage, StorageError
from millnet.federation.schema import federation_inbox_state as inbox_state
from millnet.protocols.federation import KIND_PATTERN, Message

log = logging.getLogger("millnet.federation")


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who sent a message, as this node enrolled it (a parent's region and sector are empty)."""

    node_id: str
    role: str
    region: str = ""
    sector: str = ""
    prefix: str = ""


Handler = Callable[[Connection, PeerInfo, Message], None]
#: Applies a run of messages of one kind at once (one statement for the lot instead of a few
#: per message): validates each, writes the valid ones, and returns the refused ones with what
#: refused them (a millnet error or a handler bug, as a per-message handler would raise).
BatchHandler = Callable[[Connection, PeerInfo, list[Message]], list[tuple[Message, Exception]]]


BATCH_CACHE = "millnet.batch"


def batch_cache(conn: Connection) -> dict[Any, Any]:
    """Facts read while one batch is applied (who may speak for whom, which enterprise was
    placed), so that a batch of 1,000 messages reads each once: emptied when the batch ends or
    its handlers' writes are rolled back; a handler that changes such a fact empties it."""
    cache: dict[Any, Any] = conn.info.setdefault(BATCH_CACHE, {})
    return cache


class BatchHook(Protocol):
    """Work a batch's handlers gather and write once per batch (a secondary's forwards go up
    in one ``enqueue_many`` instead of one per message): ``flush`` writes it in the applying
    transaction after the last handler; ``discard`` forgets it when the handlers' writes were
    rolled back (a handler refused a message, or the batch failed)."""

    def flush(self, conn: Connection) -> None: ...

    def discard(self, conn: Connection) -> None: ...
#: ``on_rejected(sender, reason, message_summary)``; sender is a node id (claimed, for
#: rejections of a whole batch before its signature was checked; "" when unreadable).
RejectHook = Callable[[str, str, str], None]
#: Whether ``sender`` may send a message on behalf of ``origin``.
OriginCheck = Callable[[Connection, PeerInfo, str], bool]


@dataclass(slots=True)
class ApplyResult:
    applied_seq: int
    applied: int = 0
    duplicates: int = 0
    gap: bool = False
    rejected: list[tuple[str, str, str]] = field(default_factory=list)


def summary(message: Message, detail: str) -> str:
    return f"{message.kind} #{message.seq} origin {message.origin}: {detail}"[:300]


# What a handler raises when it trips over content it did not expect (a statement refused or a
# value the database layer cannot bind is StatementError): the message's fault, never the link's.
HANDLER_BUGS = (StatementError, LookupError, TypeError, ValueError, ArithmeticError,
                AttributeError)


class Inbox:
    """Handlers by kind, and the apply step both ends of a link run."""

    def __init__(self, on_rejected: RejectHook | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}
        self.on_rejected = on_rejected
        self.rejections: Counter[str] = Counter()
        self.batch_hooks: list[BatchHook] = []

    def register(self, kind: str, handler: Handler, *, replace: bool = False) -> None:
        """Apply ``kind`` messages with ``handler``; ``replace``: in place of the one
        registered (which the new one may call: see :meth:`handler`)."""
        if not re.match(KIND_PATTERN, kind):
            raise ValueError(f"{kind!r} is not a message kind")
        if kind in self._handlers and not replace:
            raise Conflict(f"a handler of {kind!r} messages is already registered")
        self._handlers[kind] = handler

    def register_batch(self, kind: str, handler: BatchHandler) -> None:
        """Apply runs of ``kind`` messages with ``handler`` on the optimistic whole-batch path;
        the per-message handler (registered with :meth:`register`) stays the fallback, used
        when a batch must be applied one savepoint per message."""
        if kind not in self._handlers:
            raise ValueError(f"no handler of {kind!r} messages to go with a batch handler")
        self._batch_handlers[kind] = handler

    def handler(self, kind: str) -> Handler:
        """The handler registered for ``kind`` (KeyError if none)."""
        return self._handlers[kind]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @staticmethod
    def applied_seq(conn: Connection, peer: str) -> int:
        seq = conn.execute(select(inbox_state.c.applied_seq)
                           .where(inbox_state.c.peer == peer)).scalar()
        return int(seq or 0)

    @staticmethod
    def reset(conn: Connection, peer: str, applied_seq: int) -> None:
        """Start ``peer``'s inbox after ``applied_seq`` (at enrollment)."""
        if conn.execute(select(inbox_state.c.peer)
                        .where(inbox_state.c.peer == peer)).first() is None:
            conn.execute(insert(inbox_state).values(peer=peer, applied_seq=applied_seq,
                                                    rejected=0))
        else:
            conn.execute(update(inbox_state).where(inbox_state.c.peer == peer)
                         .values(applied_seq=applied_seq))

    def apply(self, conn: Connection, peer: str, sender: PeerInfo, messages: Iterable[Message],
              origin_check: OriginCheck | None = None) -> ApplyResult:
        """Apply ``messages`` from ``peer`` in the caller's (write) transaction."""
        row = conn.execute(select(inbox_state.c.applied_seq).where(inbox_state.c.peer == peer)
                           .with_for_update()).first()
        if row is None:
            conn.execute(insert(inbox_state).values(peer=peer, applied_seq=0, rejected=0))
        result = ApplyResult(int(row.applied_seq) if row is not None else 0)
        todo: list[Message] = []
        for message in sorted(messages, key=lambda m: m.seq):
            expected = result.applied_seq + len(todo) + 1
            if message.seq < expected:
                result.duplicates += 1
            elif message.seq > expected:
                result.gap = True
                break
            else:
                todo.append(message)
        if todo:
            for hook in self.batch_hooks:
                hook.discard(conn)  # nothing left over from a failed transaction
            conn.info.pop(BATCH_CACHE, None)
            try:
                self._apply_all(conn, sender, todo, origin_check, result)
                for hook in self.batch_hooks:
                    hook.flush(conn)
            except BaseException:
                for hook in self.batch_hooks:
                    hook.discard(conn)
                raise
            finally:
                conn.info.pop(BATCH_CACHE, None)  # the connection goes back to the pool
            result.applied_seq = todo[-1].seq
            conn.execute(update(inbox_state).where(inbox_state.c.peer == peer).values(
                applied_seq=result.applied_seq,
                rejected=inbox_state.c.rejected + len(result.rejected),
                updated_at=datetime.now(UTC)))
        return result

    def _apply_all(self, conn: Connection, sender: PeerInfo, todo: list[Message],
                   origin_check: OriginCheck | None, result: ApplyResult) -> None:
        """Optimistically, the whole batch under one savepoint; when a handler refuses a
        message, that savepoint is rolled back and the batch applied again with a savepoint
        per message (a savepoint each costs more than most handlers)."""
        try:
            with conn.begin_nested():
                rejected = self._apply_optimistic(conn, sender, todo, origin_check)
        except (StorageError, OperationalError):
            raise
        except (MillnetError, *HANDLER_BUGS):
            for hook in self.batch_hooks:
                hook.discard(conn)  # the savepoint took the handlers' writes with it
            conn.info.pop(BATCH_CACHE, None)
            result.rejected.clear()
            for message in todo:
                reason = self._apply_one(conn, sender, message, origin_check)
                if reason is not None:
                    result.rejected.append((sender.node_id, reason[0],
                                            summary(message, reason[1])))
            result.applied = len(todo) - len(result.rejected)
            return
        result.rejected.extend(rejected)
        result.applied = len(todo) - len(rejected)

    def _apply_optimistic(self, conn: Connection, sender: PeerInfo, todo: list[Message],
                          origin_check: OriginCheck | None) -> list[tuple[str, str, str]]:
        """Every message of ``todo`` in seq order, runs of one kind that has a batch handler
        together; the rejections, in seq order. A per-message handler that refuses raises."""
        refused: list[tuple[int, tuple[str, str, str]]] = []
        run: list[Message] = []
        for message in todo:
            reason = self._precheck(conn, sender, message, origin_check)
            if reason is not None:
                refused.append((message.seq, (sender.node_id, reason[0],
                                              summary(message, reason[1]))))
                continue
            if run and run[0].kind != message.kind:
                self._apply_run(conn, sender, run, refused)
                run = []
            if message.kind in self._batch_handlers:
                run.append(message)  # the run goes in before any later message applies
            else:
                self._handler(message)(conn, sender, message)
        if run:
            self._apply_run(conn, sender, run, refused)
        refused.sort(key=lambda r: r[0])
        return [r for _, r in refused]

    def _apply_run(self, conn: Connection, sender: PeerInfo, run: list[Message],
                   refused: list[tuple[int, tuple[str, str, str]]]) -> None:
        for message, exc in self._batch_handlers[run[0].kind](conn, sender, run):
            reason, detail = self._refusal(message, exc)
            refused.append((message.seq, (sender.node_id, reason, summary(message, detail))))

    @staticmethod
    def _refusal(message: Message, exc: Exception) -> tuple[str, str]:
        """``(reason, detail)`` of a message a handler refused with ``exc``."""
        if isinstance(exc, (StorageError, OperationalError)):
            raise exc  # the database, not the message: the whole batch is retried
        if isinstance(exc, RejectedMessage):
            return exc.reason, str(exc)
        if isinstance(exc, MillnetError):
            return "invalid_content", str(exc)
        # A handler that trips over hostile content is a bug to fix, but must not block
        # the link: counted and logged with its traceback.
        log.error("federation handler of %s failed on #%d", message.kind, message.seq,
                  exc_info=exc)
        return "handler_failed", f"{type(exc).__name__}: {exc}"

    def _handler(self, message: Message) -> Handler:
        return self._handlers[message.kind]

    def _precheck(self, conn: Connection, sender: PeerInfo, message: Message,
                  origin_check: OriginCheck | None) -> tuple[str, str] | None:
        if message.kind not in self._handlers:
            return "unknown_kind", "no handler for this kind"
        if origin_check is not None and not origin_check(conn, sender, message.origin):
            return "origin_not_allowed", f"{sender.node_id} may not speak for {message.origin}"
        return None

    def _apply_one(self, conn: Connection, sender: PeerInfo, message: Message,
                   origin_check: OriginCheck | None) -> tuple[str, str] | None:
        """None when applied, else ``(reason, detail)``."""
        reason = self._precheck(conn, sender, message, origin_check)
        if reason is not None:
            return reason
        try:
            with conn.begin_nested():
                self._handler(message)(conn, sender, message)
        except (StorageError, OperationalError):
            raise  # the database, not the message: the whole batch is retried
        except (MillnetError, *HANDLER_BUGS) as exc:
            return self._refusal(message, exc)
        return None

    def report(self, result: ApplyResult) -> None:
        """Count and announce the rejections of a committed apply."""
        for sender, reason, text in result.rejected:
            self.reject(sender, reason, text)

    def reject(self, sender: str, reason: str, text: str) -> None:
        self.rejections[reason] += 1
        log.warning("federation: rejected from %s (%s): %s", sender or "?", reason, text)
        if self.on_rejected is not None:
            self.on_rejected(sender, reason, text)
