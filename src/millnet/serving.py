"""HTTP serving shared by the platform node and the identifier node: uvicorn embedded in an
event loop the node owns.

Client addresses: a request's client is the TCP peer, unless that peer is one of the
*trusted proxies* configured (``--trusted-proxy`` of ``millnet id serve``, ``api.trusted_proxies``
of the node's configuration); only then does ``X-Forwarded-For`` name the client (the rightmost
address in it that is not itself a trusted proxy). uvicorn's own default trusts 127.0.0.1
(found by review: every local process, and anything relayed through one, could name any client
address and so escape the failed-authentication throttle)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from millnet.errors import ConfigError

_NOT_HTTP = json.dumps({
    "error": "bad_request",
    "detail": "the request is not valid HTTP/1.1 (its request line, a header or its body "
              "framing is malformed: e.g. a control character, space or non-ASCII byte in the "
              "target or a header, or a bad chunk size)"}).encode()


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the node owns SIGINT/SIGTERM and drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class JsonHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol answering a request its parser refuses with the API's JSON
    error shape (``{"error", "detail"}``, application/json) instead of uvicorn's text/plain
    "Invalid HTTP request received.": a client generated from the OpenAPI document parses
    every error the same way (schemathesis found the text/plain 400, undocumented)."""

    def send_400_response(self, msg: str) -> None:
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: application/json\r\n",
                        b"content-length: " + str(len(_NOT_HTTP)).encode() + b"\r\n",
                        b"connection: close\r\n\r\n", _NOT_HTTP])
        self.transport.write(b"".join(content))
        self.transport.close()


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


def trusted_proxies(values: Iterable[str], setting: str = "trusted_proxies") -> tuple[str, ...]:
    """The proxies given, each an IP address or network (``10.0.0.0/8``), in canonical form;
    ConfigError naming ``setting`` otherwise (uvicorn's ``*``, trust anyone, is refused)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(setting, f"{value[:60]!r} is not an IP address or network "
                                       "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return tuple(str(n) if n.num_addresses > 1 else str(n.network_address) for n in networks)


def embedded_server(app: Any, *, proxies: Iterable[str] = (), **config: Any) -> EmbeddedServer:
    """A quiet uvicorn server for ``app`` (httptools answering malformed requests in JSON, no
    lifespan, no access log) that reads ``X-Forwarded-For`` only from the trusted ``proxies``
    (none by default)."""
    trusted = trusted_proxies(proxies)
    options: dict[str, Any] = {"http": JsonHttpToolsProtocol, "log_level": "warning",
                               "access_log": False, "lifespan": "off",
                               "proxy_headers": bool(trusted),
                               "forwarded_allow_ips": list(trusted) or None}
    options.update(config)
    return EmbeddedServer(uvicorn.Config(app, **options))
