"""Helpers for federation tests: nodes in one process, enrollment without HTTP, an effects
table whose primary key makes a second application of a message fail loudly."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from millnet.federation.enroll import EnrollRequest, issue_token, proof_data
from millnet.federation.identity import NodeIdentity
from millnet.federation.inbox import PeerInfo
from millnet.federation.links import FederationLinks
from millnet.federation.settings import FederationSection
from millnet.protocols.federation import Message

EVENT = "test.event"


def node(tmp: Path, name: str, role: str, **settings: Any) -> FederationLinks:
    identity = NodeIdentity.load_or_create(tmp / f"{name}.key", name)
    links = FederationLinks(FederationSection(**settings), f"sqlite:///{tmp / name}.sqlite",
                            identity, role)
    ensure_effects(links.engine)
    return links


def ensure_effects(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS effects "
                          "(id TEXT PRIMARY KEY, origin TEXT, sender TEXT)"))


def record_effect(conn: Connection, sender: PeerInfo, message: Message) -> None:
    """A handler: one row per event id (a second application fails on the primary key)."""
    conn.execute(text("INSERT INTO effects VALUES (:id, :origin, :sender)"),
                 {"id": str(message.body["id"]), "origin": message.origin,
                  "sender": sender.node_id})


def effects(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.begin() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, origin, sender FROM effects "
                                                    "ORDER BY id"))]


def enroll_request(identity: NodeIdentity, token: str, next_seq: int = 1) -> EnrollRequest:
    return EnrollRequest(
        token=token, node_id=identity.node_id,
        public_key=base64.b64encode(identity.public_key_bytes).decode(),
        proof=base64.b64encode(identity.sign(proof_data(token, identity.node_id))).decode(),
        next_seq=next_seq)


def enroll_in_process(parent: FederationLinks, child: FederationLinks, url: str = "http://x",
                      role: str | None = None) -> None:
    """Enroll ``child`` under ``parent`` without HTTP, pinning the parent as ``enroll`` does."""
    from millnet.federation.enroll import ParentPin, _pin

    token = issue_token(parent.engine, child.identity.node_id, role or child.role, "320500",
                        "C38", f"88.100.{len(parent.children.all()) + 1}", 3600)
    answer = parent.service.enroll(enroll_request(child.identity, token))
    _pin(child.engine, ParentPin(answer.node_id, answer.role,
                                 base64.b64decode(answer.public_key), url))
