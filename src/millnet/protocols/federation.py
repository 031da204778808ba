"""The federation link's wire format, sans-IO: signed batches of sequenced messages.

An exchange is one HTTP POST from a child to its parent and its answer. Both bodies have the
same frame::

    signature (64 bytes, Ed25519)  ||  payload (JSON of a :class:`Batch`)

The signature covers exactly the payload bytes, so the receiver verifies before it decodes
anything it will act on, and the sender signs when it sends (messages may have waited in an
outbox for hours; ``sent_at`` is the time of the send). One signature per batch, not per message:
a batch of 1,000 messages costs one Ed25519 operation.

In a request ``ack`` is the highest downward seq the child has applied; in an answer it is the
highest upward seq the parent has applied, and ``reply_to`` is the request's nonce (so an old
answer cannot be replayed to a child). Messages are compact JSON arrays
``[seq, created_at_ms, kind, origin, body]``; a body is a JSON object.

This module knows no keys and no clocks: :mod:`millnet.federation.envelope` checks signatures,
the time window and nonces.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec

from millnet.errors import RejectedMessage

VERSION: Final = 1
SIGNATURE_BYTES: Final = 64
NODE_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
NODE_ID_RE: Final = re.compile(NODE_ID_PATTERN)
KIND_PATTERN: Final = r"^[a-z][a-z0-9._-]{0,63}$"

NodeId = Annotated[str, msgspec.Meta(pattern=NODE_ID_PATTERN)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Kind = Annotated[str, msgspec.Meta(pattern=KIND_PATTERN)]
Nonce = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]


class Message(msgspec.Struct, frozen=True, array_like=True):
    """One message as a receiver sees it; ``created_at`` is epoch milliseconds."""

    seq: Seq
    created_at: Count
    kind: Kind
    origin: NodeId
    body: dict[str, Any]


class OutMessage(msgspec.Struct, frozen=True, array_like=True):
    """One message as a sender encodes it: the body is the stored JSON, copied verbatim."""

    seq: int
    created_at: int
    kind: str
    origin: str
    body: msgspec.Raw


class LinkStats(msgspec.Struct, frozen=True):
    """What a child tells its parent about its upward outbox in every request."""

    depth: Count = 0
    bytes: Count = 0
    oldest_age_ms: Count = 0
    refused: Count = 0  # messages refused since the outbox was created (outbox full)


class Batch(msgspec.Struct, frozen=True):
    v: int
    sender: NodeId
    recipient: NodeId
    sent_at: Count  # epoch ms, set at send time
    nonce: Nonce
    ack: Count
    messages: list[Message]
    reply_to: str = ""
    stats: LinkStats | None = None


class OutBatch(msgspec.Struct, frozen=True):
    """A :class:`Batch` as its sender builds it (messages carry their stored bodies)."""

    v: int
    sender: str
    recipient: str
    sent_at: int
    nonce: str
    ack: int
    messages: list[OutMessage]
    reply_to: str = ""
    stats: LinkStats | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Batch)
_body_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_payload(batch: OutBatch) -> bytes:
    """The bytes a sender signs and sends after the signature."""
    return _encoder.encode(batch)


def frame(signature: bytes, payload: bytes) -> bytes:
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError("an Ed25519 signature is 64 bytes")
    return signature + payload


def split_frame(data: bytes, max_bytes: int) -> tuple[bytes, bytes]:
    """``(signature, payload)`` of a received body; ``oversized`` is checked before anything
    else is looked at."""
    if len(data) > max_bytes:
        raise RejectedMessage("oversized", f"{len(data)} bytes, the limit is {max_bytes}")
    if len(data) <= SIGNATURE_BYTES:
        raise RejectedMessage("malformed", "shorter than a signature and a payload")
    return data[:SIGNATURE_BYTES], data[SIGNATURE_BYTES:]


def decode_payload(payload: bytes) -> Batch:
    """The batch in ``payload``; ``malformed`` naming what was wrong otherwise."""
    try:
        batch = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RejectedMessage("malformed", str(exc)) from exc
    except RecursionError as exc:  # nesting deeper than Python's stack
        raise RejectedMessage("malformed", "nested too deeply") from exc
    if batch.v != VERSION:
        raise RejectedMessage("malformed", f"version {batch.v} is not {VERSION}")
    return batch


def peek_sender(payload: bytes) -> str:
    """The sender a payload claims, for counting a rejection of an undecodable batch;
    empty when not even that can be read."""
    match = re.search(rb'"sender":"([A-Za-z0-9._-]{1,64})"', payload[:512])
    return match.group(1).decode() if match else ""


def encode_body(body: dict[str, Any]) -> bytes:
    """A message body as stored in an outbox (compact JSON)."""
    return _encoder.encode(body)


def decode_body(data: bytes) -> dict[str, Any]:
    return _body_decoder.decode(data)
