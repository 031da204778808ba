"""Forged federation exchanges for negative tests: a batch signed with one node's real key,
claiming whatever sender and origin the test wants, posted to a running parent."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import msgspec

from millnet.bench.federation_chain import ChainNode, query
from millnet.federation import envelope
from millnet.federation.identity import NodeIdentity
from millnet.federation.schema import UP
from millnet.protocols.federation import (
    VERSION,
    Message,
    OutBatch,
    OutMessage,
    decode_payload,
    split_frame,
)


@dataclass(frozen=True)
class ForgedAnswer:
    status: int
    text: str
    messages: list[Message]


def _applied(db_node: ChainNode, peer: str) -> int:
    rows = query(db_node.db, "SELECT applied_seq FROM federation_inbox_state WHERE peer = ?",
                 peer)
    return int(str(rows[0][0])) if rows else 0


def forged_exchange(signer: ChainNode, parent: ChainNode, *, claim_sender: str, origin: str,
                    event_id: str) -> ForgedAnswer:
    """One exchange signed with ``signer``'s key (the node must be stopped: this uses its next
    upward seq), sending ``claim_sender``'s next seq: a high security event of ``origin``."""
    identity = NodeIdentity.load_or_create(signer.data / "federation.key", signer.name)
    now = envelope.now_ms()
    body = {"id": event_id, "kind": "auth.brute_force", "severity": "high",
            "occurred_at": "2026-12-01T00:00:00+00:00", "count": 1, "target": "api"}
    message = OutMessage(_applied(parent, claim_sender) + 1, now, "security.event", origin,
                         msgspec.Raw(json.dumps(body).encode()))
    batch = OutBatch(v=VERSION, sender=claim_sender, recipient=parent.name, sent_at=now,
                     nonce=envelope.new_nonce(), ack=_applied(signer, UP), messages=[message])
    r = httpx.post(parent.url + "/api/v1/federation/exchange",
                   content=envelope.seal(identity, batch),
                   headers={"content-type": "application/octet-stream"}, timeout=10)
    if r.status_code != 200:
        return ForgedAnswer(r.status_code, r.text, [])
    _, payload = split_frame(r.content, 64 * 1024 * 1024)
    return ForgedAnswer(r.status_code, "", decode_payload(payload).messages)
