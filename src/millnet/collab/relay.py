"""Shares through the nodes between two enterprises: a secondary or the national node passes
each share message on, and keeps nothing of it.

A message goes down to the child the recipient enterprise is reached through when there is
one, else up (when it came from a child and this node has a parent); anything else is refused
(``share_unroutable``), counted like every refusal. The sender of a message must be the owner
(offer, update, revoke) or the partner (accept, decline) it names: the link layer has already
checked that the message's origin is one its sender may speak for, so an enterprise cannot
send shares in another's name. The payload stays sealed for the partner (docs/collaboration.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from millnet.collab.common import KINDS, TO_PARTNER, node_of
from millnet.errors import RejectedMessage
from millnet.federation.inbox import Inbox, PeerInfo, batch_cache
from millnet.federation.schema import federation_children
from millnet.protocols.federation import Message

#: ``send(conn, peer, kind, body, origin)``: peer is a child's id or "parent".
Send = Callable[[Connection, str, str, dict[str, Any], str | None], None]
Routes = Callable[[Connection], Mapping[str, str]]


def ends(kind: str, body: dict[str, Any]) -> tuple[str, str]:
    """(who sends it, who it is for) of a share message."""
    owner, partner = node_of(body, "owner"), node_of(body, "partner")
    return (owner, partner) if kind in TO_PARTNER else (partner, owner)


def register_relay(inbox: Inbox, send: Send, routes: Routes, has_parent: bool) -> None:
    def relay(conn: Connection, sender: PeerInfo, message: Message) -> None:
        origin = message.origin or sender.node_id
        source, recipient = ends(message.kind, message.body)
        if source != origin:
            raise RejectedMessage("share_origin", f"{origin} sent a share message of {source}")
        cache = batch_cache(conn)  # read once per applied batch, not once per message
        if "share routes" not in cache:
            cache["share routes"] = routes(conn)
        child = cache["share routes"].get(recipient)
        if child is not None:
            send(conn, child, message.kind, message.body, origin)
            return
        from_child = conn.execute(select(federation_children.c.node_id).where(
            federation_children.c.node_id == sender.node_id)).first() is not None
        if from_child and has_parent:
            send(conn, "parent", message.kind, message.body, origin)
            return
        raise RejectedMessage("share_unroutable", f"no route to {recipient}")

    for kind in KINDS:
        inbox.register(kind, relay)
