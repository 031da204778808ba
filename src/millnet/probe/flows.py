"""TCP reassembly, enough to decode PDUs that span segments.

Each direction of a flow keeps the bytes not yet framed (``buffer``, at most ``max_buffer``)
and a few segments that arrived ahead of a hole (``pending``). A hole that is not filled
before ``max_pending`` segments wait, or a frame that does not decode, *resynchronises* the
direction: what was buffered is dropped and framing restarts at the next segment, because
industrial clients write one PDU per segment far more often than not. A frame longer than the
buffer is skipped by its declared length without being held. The flow table is an LRU of at
most ``max_flows`` flows; the least recently seen goes first. So a hostile capture can hold at
most ``max_flows * 2 * (max_buffer + max_pending_bytes)`` bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

SEQ_MOD: Final = 1 << 32

FlowKey = tuple[str, int, str, int]  # client address, client port, server address, server port


def _seq_delta(seq: int, expected: int) -> int:
    """Signed distance of ``seq`` after ``expected`` on the 32-bit sequence circle."""
    delta = (seq - expected) % SEQ_MOD
    return delta - SEQ_MOD if delta >= SEQ_MOD // 2 else delta


@dataclass(slots=True)
class Direction:
    max_buffer: int
    max_pending: int
    max_pending_bytes: int
    next_seq: int | None = None
    buffer: bytearray = field(default_factory=bytearray)
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    skip: int = 0  # bytes still to drop of a frame too long to hold
    #: framing known to start at a PDU boundary: false mid-stream and after a hole, until a
    #: frame decodes (a framing error before that is a resync, not a malformed PDU)
    synced: bool = True

    def accept(self, seq: int, payload: bytes) -> tuple[bytes, bool]:
        """Take one segment; the bytes now in order and whether a hole forced a resync."""
        if self.next_seq is None:
            self.next_seq = seq
        delta = _seq_delta(seq, self.next_seq)
        if delta < 0:  # retransmission, maybe with new bytes at its end
            if -delta >= len(payload):
                return b"", False
            payload, delta = payload[-delta:], 0
        if delta > 0:
            if (len(self.pending) < self.max_pending
                    and self.pending_bytes + len(payload) <= self.max_pending_bytes):
                if seq not in self.pending:
                    self.pending[seq] = payload
                    self.pending_bytes += len(payload)
                return b"", False
            return self._jump(seq, payload), True
        return self._in_order(payload), False

    def _in_order(self, payload: bytes) -> bytes:
        assert self.next_seq is not None
        out = [payload]
        self.next_seq = (self.next_seq + len(payload)) % SEQ_MOD
        while self.pending:
            ready = [s for s in self.pending if _seq_delta(s, self.next_seq) <= 0]
            if not ready:
                break
            for seq in ready:
                chunk = self.pending.pop(seq)
                self.pending_bytes -= len(chunk)
                overlap = -_seq_delta(seq, self.next_seq)
                if overlap < len(chunk):
                    out.append(chunk[overlap:])
                    self.next_seq = (self.next_seq + len(chunk) - overlap) % SEQ_MOD
        return b"".join(out)

    def _jump(self, seq: int, payload: bytes) -> bytes:
        """Give up on the hole: restart at the earliest segment we hold (or this one)."""
        self.synced = False
        self.buffer.clear()
        self.skip = 0
        held = {**self.pending, seq: payload}
        self.pending.clear()
        self.pending_bytes = 0
        assert self.next_seq is not None
        base = self.next_seq
        first = min(held, key=lambda s: _seq_delta(s, base))
        self.next_seq = first
        first_payload = held.pop(first)
        for other, chunk in held.items():
            self.pending[other] = chunk
            self.pending_bytes += len(chunk)
        return self._in_order(first_payload)

    def resync(self) -> None:
        self.buffer.clear()
        self.skip = 0


@dataclass(slots=True)
class Flow:
    key: FlowKey
    protocol: str | None
    client: Direction
    server: Direction
    first_seen: float
    last_seen: float
    handshake: bool = False  # seen from the SYN: client and server are known, not guessed
    fins: int = 0  # 1: the client closed, 2: the server closed
    session: dict[str, Any] = field(default_factory=dict)


class FlowTable:
    def __init__(self, max_flows: int = 4096, max_buffer: int = 64 << 10,
                 max_pending: int = 32, max_pending_bytes: int = 64 << 10) -> None:
        self.max_flows = max_flows
        self._limits = (max_buffer, max_pending, max_pending_bytes)
        self._flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self.created = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._flows)

    def find(self, key: FlowKey) -> Flow | None:
        flow = self._flows.get(key)
        if flow is not None:
            self._flows.move_to_end(key)
        return flow

    def create(self, key: FlowKey, protocol: str | None, ts: float, handshake: bool) -> Flow:
        while len(self._flows) >= self.max_flows:
            self._flows.popitem(last=False)
            self.evictions += 1
        flow = Flow(key, protocol, Direction(*self._limits, synced=handshake),
                    Direction(*self._limits, synced=handshake), ts, ts, handshake)
        self._flows[key] = flow
        self.created += 1
        return flow

    def remove(self, key: FlowKey) -> None:
        self._flows.pop(key, None)

    def flows(self) -> list[Flow]:
        return list(self._flows.values())
