"""HTTP serving shared by the platform node and the identifier node: uvicorn embedded in an
event loop the node owns."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the node owns SIGINT/SIGTERM and drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int, backlog: int = 2048, *,
                     reuse_port: bool = False) -> socket.socket:
    """A bound, listening TCP socket (port 0 picks a free one), so the port is known before
    serving starts and clients that connect early wait in the backlog instead of being
    refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    # when it is, and without it every keep-alive response after the first waits ~40 ms
    # (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several processes accept on the port, the kernel spreading connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (about 1.5 times the UDP datagrams of the default loop
    here), else None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def embedded_server(app: Any, **config: Any) -> EmbeddedServer:
    """A quiet uvicorn server for ``app`` (httptools, no lifespan, no access log)."""
    options: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "off"}
    options.update(config)
    return EmbeddedServer(uvicorn.Config(app, **options))
