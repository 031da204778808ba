"""An enterprise's collaboration: the shares it offers and those offered to it, on its
database, speaking through its upward outbox (``send``), and the round that pushes live
shares' payloads and ends expired ones (:meth:`Collaboration.run`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Connection, Engine

from millnet.collab.common import TO_OWNER, TO_PARTNER
from millnet.collab.owner import OwnerShares, Send
from millnet.collab.partner import PartnerShares
from millnet.collab.providers import Sources, kinds
from millnet.errors import StorageError
from millnet.federation.inbox import Inbox, PeerInfo
from millnet.protocols.federation import Message

log = logging.getLogger("millnet.collab")


class Collaboration:
    def __init__(self, engine: Engine, node_id: str, send: Send) -> None:
        self.node_id = node_id
        self.owner = OwnerShares(engine, node_id, send, kinds())
        self.partner = PartnerShares(engine, node_id, send)
        self.attached = False

    def attach(self, sources: Sources) -> None:
        """The platform's stores, which the share kinds' providers read."""
        self.owner.attach(sources)
        self.attached = True

    def register(self, inbox: Inbox) -> None:
        """Handlers of the share messages a parent passes down to this enterprise."""
        def to_partner(conn: Connection, sender: PeerInfo, message: Message) -> None:
            self.partner.apply(conn, message.origin or sender.node_id, message.kind,
                               message.body)

        def to_owner(conn: Connection, sender: PeerInfo, message: Message) -> None:
            self.owner.apply_answer(conn, message.origin or sender.node_id, message.kind,
                                    message.body)

        for kind in TO_PARTNER:
            inbox.register(kind, to_partner)
        for kind in TO_OWNER:
            inbox.register(kind, to_owner)

    def round(self) -> int:
        """Push what changed, end what expired (blocking)."""
        self.partner.expire()
        return self.owner.push() if self.attached else self.owner.expire()

    async def run(self, every_s: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.round)
            except StorageError as exc:  # busy database or a full outbox: the next round
                log.warning("collaboration round: %s", exc)
            await asyncio.sleep(every_s)


def sender(send_up: Any) -> Send:
    """``send(conn, kind, body)`` over ``send_up(conn, kind, body)`` that returns None when
    the outbox refused the message (full): raised, so the change that needed it is undone."""
    def send(conn: Connection, kind: str, body: dict[str, Any]) -> None:
        if send_up(conn, kind, body) is None:
            raise StorageError(f"the federation outbox is full: {kind} not sent")

    return send
