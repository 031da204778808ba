"""Composition root of a standalone identifier node (``millnet id serve``).

Opens the identifier store in the data directory, creates the node's prefix record and admin
handle on first start (``0.NA/<prefix>`` with HS_ADMIN pointing at ``<prefix>/ADMIN`` index 300,
whose HS_SECKEY holds the admin secret), and serves the native protocol over UDP and TCP.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from millnet.errors import ConfigError
from millnet.identifiers.delegation import bootstrap_prefix
from millnet.identifiers.native import NativeHandler
from millnet.identifiers.service import IdentifierService
from millnet.identifiers.store import IdentifierStore
from millnet.identifiers.transport import NativeServer
from millnet.protocols.handle import (
    ServerRecord,
    ServiceInterface,
    ServiceType,
    SiteInfo,
    TransportProtocol,
    address_octets,
)

log = logging.getLogger("millnet.identifiers")


@dataclass(frozen=True)
class IdServerOptions:
    prefix: str
    data_dir: Path
    admin_secret_file: Path
    host: str = "127.0.0.1"
    udp_port: int = 2641
    tcp_port: int = 2641
    http_port: int = 8000
    role: str = "enterprise"
    parent: str | None = None


def read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError("admin_secret_file", f"cannot read {path}: {exc.strerror}") from exc
    if len(secret) < 8:
        raise ConfigError("admin_secret_file", f"{path}: the secret needs at least 8 bytes")
    return secret


def site_info(host: str, udp_port: int, tcp_port: int, http_port: int) -> SiteInfo:
    interfaces = (
        ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP, tcp_port),
        ServiceInterface(ServiceType.QUERY, TransportProtocol.UDP, udp_port),
        ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.HTTP, http_port),
    )
    return SiteInfo(servers=(ServerRecord(1, address_octets(host), interfaces=interfaces),),
                    attributes=(("desc", "millnet identifier node"),))


def open_identifier_node(opts: IdServerOptions) -> tuple[IdentifierStore, IdentifierService,
                                                         SiteInfo]:
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    store = IdentifierStore.open(f"sqlite:///{opts.data_dir / 'identifiers.sqlite'}")
    site = site_info(opts.host, opts.udp_port, opts.tcp_port, opts.http_port)
    if bootstrap_prefix(store, opts.prefix, read_secret(opts.admin_secret_file), site,
                        now=int(time.time())):
        log.info("created 0.NA/%s and %s/ADMIN (HS_SECKEY at index 300)", opts.prefix,
                 opts.prefix)
    return store, IdentifierService(store, [opts.prefix]), site


async def serve_identifiers(opts: IdServerOptions, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation)."""
    store, service, site = open_identifier_node(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with NativeServer(NativeHandler(service, site), opts.host, opts.udp_port,
                                opts.tcp_port) as server:
            log.info("identifier node %s (%s) on udp/%d tcp/%d", opts.prefix, opts.role,
                     server.udp_port, server.tcp_port)
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        store.close()
