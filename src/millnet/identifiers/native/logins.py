"""IDIS logins (the CAICT SDK's LOGIN 2000 and LOGIN_ID_SYSTEM 2001): an identity bound to a
TCP connection for the rest of its life.

The secret or signature behind a login is checked in a worker thread (:mod:`.offload`), and the
connection may close meanwhile; a new connection may then come from the same address and port,
and a :class:`~.transport.TcpPeer` compares as that pair. So a check in progress holds a token
for its connection, dropped when the connection closes, and the login binds only if its token
is still the connection's: a check finishing after the close logs in nobody.
"""

from __future__ import annotations

from millnet.identifiers.core.errors import AuthenticationFailed, OperationDenied
from millnet.identifiers.wire.transport import TcpPeer
from millnet.protocols.handle import ValueReference


def tcp_only(peer: tuple[str, int]) -> TcpPeer:
    """IDIS logins bind an identity to a TCP connection; a UDP source address proves
    nothing."""
    if not isinstance(peer, TcpPeer):
        raise OperationDenied("log in over TCP: a login binds the connection")
    return peer


class ConnectionLogins:
    """Who is logged in on which open TCP connection, and the logins being checked."""

    def __init__(self) -> None:
        self._bound: dict[TcpPeer, ValueReference] = {}
        self._checking: dict[TcpPeer, object] = {}

    def of(self, peer: tuple[str, int]) -> ValueReference | None:
        """The principal logged in on ``peer``'s connection (None for UDP, or nobody)."""
        return self._bound.get(peer) if isinstance(peer, TcpPeer) else None

    def started(self, peer: tuple[str, int]) -> object:
        """A check of a login on ``peer`` begins: its token (OperationDenied over UDP)."""
        token = object()
        self._checking[tcp_only(peer)] = token
        return token

    def ended(self, peer: tuple[str, int], token: object | None) -> None:
        """The check of ``token`` is over (bound or not)."""
        if isinstance(peer, TcpPeer) and self._checking.get(peer) is token:
            del self._checking[peer]

    def bind(self, peer: tuple[str, int], token: object | None,
             principal: ValueReference) -> None:
        """Log ``principal`` in on ``peer``'s connection, if it is still the one whose check
        holds ``token``; AuthenticationFailed when it closed meanwhile."""
        tcp = tcp_only(peer)
        if self._checking.get(tcp) is not token:
            raise AuthenticationFailed("the connection closed during the login")
        self._bound[tcp] = principal

    def closed(self, peer: tuple[str, int]) -> None:
        if isinstance(peer, TcpPeer):
            self._bound.pop(peer, None)
            self._checking.pop(peer, None)

    def __len__(self) -> int:
        """Connections logged in or being checked."""
        return len(self._bound) + len(self._checking)


__all__ = ["ConnectionLogins", "tcp_only"]
