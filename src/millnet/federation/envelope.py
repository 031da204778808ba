"""Sealing and opening signed batches: the checks every exchange passes, in a fixed order.

A receiver rejects, each under its own counted reason, in this order: ``oversized`` (before
anything is parsed), ``malformed``, ``unknown_sender``, ``wrong_recipient``, ``bad_signature``,
``out_of_window`` (``sent_at`` more than the window away from the receiver's clock) and then
``replay`` (a nonce seen within the window; the parent keeps nonces in its database, in the
transaction that applies the batch, so a restart does not forget them).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sqlalchemy import Connection, delete, insert, select

from millnet.errors import RejectedMessage
from millnet.federation.identity import NodeIdentity, verify
from millnet.federation.schema import federation_nonces as nonces
from millnet.protocols.federation import (
    Batch,
    OutBatch,
    decode_payload,
    encode_payload,
    frame,
    split_frame,
)

#: The HTTP status of each rejection reason of a whole exchange.
STATUS = {
    "oversized": 413, "malformed": 400, "unknown_sender": 401, "wrong_recipient": 421,
    "bad_signature": 401, "out_of_window": 401, "replay": 409,
}


def new_nonce() -> str:
    return secrets.token_hex(16)


def now_ms() -> int:
    return int(time.time() * 1000)


def seal(identity: NodeIdentity, batch: OutBatch) -> bytes:
    """The signed body of ``batch`` (signed now: call this at send time)."""
    payload = encode_payload(batch)
    return frame(identity.sign(payload), payload)


def open_sealed(data: bytes, *, me: str, key_of: Callable[[str], bytes | None],
                max_bytes: int, window_ms: int, now: int | None = None) -> Batch:
    """The verified batch in ``data``, or :class:`RejectedMessage` with the first reason that
    applies. ``key_of`` gives the public key of a sender, None when the sender is unknown."""
    signature, payload = split_frame(data, max_bytes)
    batch = decode_payload(payload)
    key = key_of(batch.sender)
    if key is None:
        raise RejectedMessage("unknown_sender", f"{batch.sender} is not enrolled here")
    if batch.recipient != me:
        raise RejectedMessage("wrong_recipient", f"sent to {batch.recipient}, this is {me}")
    if not verify(key, signature, payload):
        raise RejectedMessage("bad_signature", f"not signed by {batch.sender}'s key")
    now = now_ms() if now is None else now
    if abs(now - batch.sent_at) > window_ms:
        raise RejectedMessage("out_of_window",
                              f"sent_at is {(batch.sent_at - now) / 1000:+.1f} s from here")
    return batch


def record_nonce(conn: Connection, peer: str, nonce: str, window_ms: int,
                 now: int | None = None) -> None:
    """Remember ``nonce`` of ``peer`` for the window; ``replay`` when it was seen."""
    now = now_ms() if now is None else now
    seen = conn.execute(select(nonces.c.nonce).where(nonces.c.peer == peer,
                                                     nonces.c.nonce == nonce)).first()
    if seen is not None:
        raise RejectedMessage("replay", f"nonce {nonce} of {peer} was already used")
    conn.execute(insert(nonces).values(peer=peer, nonce=nonce, expires_ms=now + 2 * window_ms))


def prune_nonces(conn: Connection, now: int | None = None) -> int:
    """Forget nonces older than their window (a replay of them fails the window check)."""
    now = now_ms() if now is None else now
    return conn.execute(delete(nonces).where(nonces.c.expires_ms < now)).rowcount
