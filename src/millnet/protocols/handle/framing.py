"""Cutting byte streams and datagrams into messages (RFC 3652 2.3, as hdllib does it).

TCP: every message is one envelope followed by exactly ``MessageLength`` octets; a response
may be several messages (the CN flag). UDP: a message longer than 492 octets after its
envelope is sent as several datagrams, each with its own envelope carrying the TC flag, the
fragment number as SequenceNumber and the *whole* message's length; fragment ``n`` holds the
octets at ``n * 492``. So TC marks a fragment, not (as in DNS) a cut-off answer to retry over
TCP: a receiver that sees TC waits for the other fragments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable

from .codec import Envelope, Message, MessageError, decode_envelope, decode_payload
from .constants import ENVELOPE_SIZE, UDP_FRAGMENT_SIZE, EnvelopeFlag
from .wire import U32

#: Largest message accepted by default: hdllib itself caps messages at 256 KiB.
DEFAULT_MAX_MESSAGE = 1 << 20


class StreamError(MessageError):
    """The stream cannot be cut into messages any more (a length above the limit, a
    fragment on TCP). The framer refuses further data: answer if you like, then close."""


class TcpFramer:
    """Reassembles messages from a TCP byte stream.

    ``receive_data`` returns every message completed by the bytes given. A message that is
    framed correctly but does not decode raises :class:`MessageError` after it has been
    consumed; messages decoded before it in the same call are kept and come first from the
    next call, so after an exception call ``receive_data(b"")`` to carry on. A lying length
    raises :class:`StreamError` before any byte of it is buffered or allocated."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_message_size
        self._broken: StreamError | None = None
        self._ready: list[Message] = []

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned message."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[:self._pos]  # compact rarely: pipelined messages stay O(n)
            self._pos = 0
        self._buf += data

    def next_message(self) -> Message | None:
        """The next complete message, or None until more bytes arrive."""
        if self._broken is not None:
            raise self._broken
        buf, pos = self._buf, self._pos
        if len(buf) - pos < ENVELOPE_SIZE:
            return None
        env, length = decode_envelope(buf, pos)
        if length > self._max:
            self._broken = StreamError(f"envelope.message_length: {length} exceeds the limit "
                                       f"of {self._max} bytes", env)
            raise self._broken
        if env.truncated:
            self._broken = StreamError("envelope.truncated: fragments are a UDP matter; "
                                       "TCP messages come whole", env)
            raise self._broken
        start = pos + ENVELOPE_SIZE
        end = start + length
        if len(buf) < end:
            return None
        with memoryview(buf) as view:
            payload = bytes(view[start:end])
        self._pos = end
        return decode_payload(env, payload)

    def receive_data(self, data: bytes) -> list[Message]:
        self.feed(data)
        out, self._ready = self._ready, []
        while True:
            try:
                msg = self.next_message()
            except MessageError:
                self._ready = out
                raise
            if msg is None:
                return out
            out.append(msg)


def udp_packets(message: bytes) -> list[bytes]:
    """Datagrams for an encoded message (``encode_message`` output), fragmented as hdllib
    expects when it does not fit one 512-octet datagram."""
    payload_length = len(message) - ENVELOPE_SIZE
    if payload_length <= UDP_FRAGMENT_SIZE:
        return [message]
    head = bytearray(message[:ENVELOPE_SIZE])
    head[2] |= EnvelopeFlag.TC
    packets = []
    for seq, start in enumerate(range(ENVELOPE_SIZE, len(message), UDP_FRAGMENT_SIZE)):
        head[12:16] = U32.pack(seq)
        packets.append(bytes(head) + message[start:start + UDP_FRAGMENT_SIZE])
    return packets


def udp_packet_count(message_length: int) -> int:
    """How many datagrams a message of ``message_length`` octets (after the envelope) needs."""
    return max(1, -(-message_length // UDP_FRAGMENT_SIZE))


@dataclasses.dataclass
class _Partial:
    length: int
    fragments: dict[int, bytes]
    received: int = 0


class UdpReassembler:
    """Turns datagrams into messages, collecting fragments per (peer, request id).

    Memory is bounded by bytes actually received: fragments are kept as they came, never in
    a buffer sized by the announced length, and at most ``max_pending`` partial messages are
    held (the oldest is dropped first). Call :meth:`discard` when a request times out."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE, max_pending: int = 64,
                 ) -> None:
        self._max = max_message_size
        self._max_pending = max_pending
        self._pending: dict[tuple[Hashable, int], _Partial] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def discard(self, peer: Hashable, request_id: int) -> None:
        self._pending.pop((peer, request_id), None)

    def receive_datagram(self, data: bytes, peer: Hashable = None) -> Message | None:
        """The message this datagram completes, or None while fragments are missing."""
        env, length = decode_envelope(data)
        fragment = data[ENVELOPE_SIZE:]
        if not env.truncated:
            if len(fragment) != length:
                raise MessageError(f"envelope.message_length: announces {length} bytes, "
                                   f"{len(fragment)} follow", env)
            return decode_payload(env, fragment)
        return self._fragment(env, length, fragment, peer)

    def _fragment(self, env: Envelope, length: int, fragment: bytes,
                  peer: Hashable) -> Message | None:
        if length > self._max:
            raise MessageError(f"envelope.message_length: {length} exceeds the limit of "
                               f"{self._max} bytes", env)
        count = udp_packet_count(length)
        if env.sequence >= count:
            raise MessageError(f"envelope.sequence: fragment {env.sequence} of a message "
                               f"in {count} fragments", env)
        expected = UDP_FRAGMENT_SIZE if env.sequence < count - 1 else (
            length - UDP_FRAGMENT_SIZE * (count - 1))
        if len(fragment) != expected:
            raise MessageError(f"envelope: fragment {env.sequence} has {len(fragment)} bytes, "
                               f"expected {expected}", env)
        key = (peer, env.request_id)
        partial = self._pending.get(key)
        if partial is None:
            if len(self._pending) >= self._max_pending:
                del self._pending[next(iter(self._pending))]
            partial = self._pending[key] = _Partial(length, {})
        elif partial.length != length:
            del self._pending[key]
            raise MessageError(f"envelope.message_length: {length} differs from {partial.length}"
                               " announced by an earlier fragment", env)
        if env.sequence not in partial.fragments:
            partial.fragments[env.sequence] = fragment
            partial.received += len(fragment)
        if partial.received < length:
            return None
        del self._pending[key]
        payload = b"".join(partial.fragments[i] for i in range(count))
        whole = dataclasses.replace(env, sequence=0, truncated=False)
        return decode_payload(whole, payload)
