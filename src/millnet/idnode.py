"""The identifier service of a node: built by :mod:`millnet.services` from the ``[identifiers]``
section (as :class:`IdServerOptions`), run by :func:`identifier_node`.

Opens the identifier store in the data directory, creates the node's prefix record and admin
handle on first start (``0.NA/<prefix>`` with HS_ADMIN pointing at ``<prefix>/ADMIN`` index 300,
whose HS_SECKEY holds the admin secret), and serves the native protocol over UDP and TCP.

Hierarchy (:mod:`millnet.identifiers.hierarchy.hierarchy`): ``delegates`` are the child
prefixes this node delegates (each to one or more replica servers): ``0.NA/<child>`` with their
HS_SITE is written at every start. ``parent`` is where unknown prefixes are referred (root
hints); ``recursive`` makes the node follow referrals itself for requests with the REC flag,
with a resolver cache that follows the change feeds of the nodes it caches from
(``change_interval``, see :mod:`millnet.identifiers.hierarchy.freshness`); every node
publishes its own feed on its HTTP API (:mod:`millnet.identifiers.http.changes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import make_url
from starlette.types import ASGIApp

from millnet.errors import ConfigError
from millnet.files import private_dir, private_umask
from millnet.identifiers.core.delegation import (
    ADMIN_SUFFIX,
    SECKEY_INDEX,
    bootstrap_prefix,
    prefix_key,
)
from millnet.identifiers.core.fastpath import FastResolver, sqlite_path
from millnet.identifiers.core.offload import Offload
from millnet.identifiers.core.service import IdentifierService, check_layouts
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.cache import ResolverCache
from millnet.identifiers.hierarchy.client import Server
from millnet.identifiers.hierarchy.freshness import INTERVAL as CHANGE_INTERVAL
from millnet.identifiers.hierarchy.freshness import ChangeFollower
from millnet.identifiers.hierarchy.hierarchy import (
    Endpoint,
    register_delegation,
    register_service,
    register_service_delegation,
    site_of,
)
from millnet.identifiers.hierarchy.resolver import RecursiveResolver
from millnet.identifiers.hierarchy.templates import (
    TemplateCheck,
    publish_builtin,
    remote_fetcher,
    trusted_prefixes,
)
from millnet.identifiers.http.changes import change_routes
from millnet.identifiers.http.rest import create_handle_app
from millnet.identifiers.http.rest_batch import batch_routes
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.replication.replication import Mirror, replication_routes, trim_log
from millnet.identifiers.wire.transport import NativeServer, ViolationHook
from millnet.idoptions import IdServerOptions, read_secret
from millnet.protocols.handle import (
    ServerRecord,
    ServiceInterface,
    ServiceType,
    SiteInfo,
    TransportProtocol,
    ValueReference,
    address_octets,
    prefix_handle,
)
from millnet.serving import (
    embedded_server,
    event_loop_factory,
    listening_socket,
)
from millnet.supervise import supervise

__all__ = ["IdServerOptions", "LiveIdNode", "describe", "identifier_node", "open_identifier_node",
           "task_restarts"]

#: ``(host, reason, fingerprint)`` of a failed admin authentication (security monitoring).
AuthFailureHook = Callable[[str, str, str], None]
log = logging.getLogger("millnet.identifiers")
def site_info(host: str, udp_port: int, tcp_port: int, http_port: int | None) -> SiteInfo:
    """The node's HS_SITE: its native ports, and its HTTP port when it serves HTTP."""
    interfaces = [
        ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP, tcp_port),
        ServiceInterface(ServiceType.QUERY, TransportProtocol.UDP, udp_port),
    ]
    if http_port:
        interfaces.append(ServiceInterface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.HTTP,
                                           http_port))
    return SiteInfo(servers=(ServerRecord(1, address_octets(host),
                                          interfaces=tuple(interfaces)),),
                    attributes=(("desc", "millnet identifier node"),))


def open_identifier_node(opts: IdServerOptions, *, setup: bool = True, http: bool = True,
                         ) -> tuple[IdentifierStore, IdentifierService, SiteInfo]:
    """The node's store and service; with ``setup`` (the main process), the prefix records,
    delegations and templates are written first. The site lists ``opts.http_port`` when
    ``http`` (the node serves HTTP there)."""
    opts.check()
    private_umask()
    private_dir(opts.data_dir)
    store = IdentifierStore.open(opts.database_url, setting="identifiers.database")
    site = site_info(opts.advertised_host, opts.udp_port, opts.tcp_port,
                     opts.http_port if http else None)
    if setup:
        _setup(store, opts, site)
    fetch = None
    if opts.parent:
        parent = Endpoint.parse(opts.parent, "identifiers.parent")
        fetch = remote_fetcher(Server(parent.host, parent.udp_port, parent.tcp_port))
    checks = (check_layouts, TemplateCheck(store, fetch, trusted=trusted_prefixes(opts.prefix)))
    return store, IdentifierService(store, [opts.prefix], value_checks=checks,
                                    mirror_of=opts.mirror_of), site


def _setup(store: IdentifierStore, opts: IdServerOptions, site: SiteInfo) -> None:
    if bootstrap_prefix(store, opts.prefix, read_secret(opts.admin_secret_file), site,
                        now=int(time.time())):
        log.info("created 0.NA/%s and %s/ADMIN (HS_SECKEY at index 300)", opts.prefix,
                 opts.prefix)
    for child, servers in opts.delegates:
        replicas = site_of([Endpoint.parse(s, "identifiers.delegates") for s in servers])
        register_delegation(store, opts.prefix, child, [replicas], now=int(time.time()))
        log.info("delegating %s to %s", child, ", ".join(servers))
    admin = ValueReference(f"{prefix_key(opts.prefix)}/{ADMIN_SUFFIX}", SECKEY_INDEX)
    for handle, servers in opts.services:
        register_service(store, handle, [site_of([Endpoint.parse(s, "identifiers.services")
                                                  for s in servers])], admin,
                         now=int(time.time()))
        log.info("service %s: %s", handle, ", ".join(servers))
    for child, handle in opts.delegates_via:
        register_service_delegation(store, opts.prefix, child, handle, now=int(time.time()))
        log.info("delegating %s through %s", child, handle)
    if opts.role == "secondary":
        for made in publish_builtin(store, prefix_key(opts.prefix), admin):
            log.info("published template %s", made)


def node_handler(opts: IdServerOptions, service: IdentifierService, site: SiteInfo,
                 offload: Offload) -> NativeHandler:
    parent = site_of([Endpoint.parse(opts.parent, "identifiers.parent")]) if opts.parent else None
    resolver = RecursiveResolver(ResolverCache(opts.cache_size, opts.negative_ttl),
                                 max_recursion=opts.max_recursion,
                                 follow_changes=opts.change_interval > 0,
                                 change_interval=opts.change_interval or CHANGE_INTERVAL,
                                 ) if opts.recursive else None
    return NativeHandler(service, site, parent=parent, resolver=resolver, offload=offload)


def fast_resolver(opts: IdServerOptions, service: IdentifierService) -> FastResolver | None:
    """The fast path over the node's SQLite file; None on other databases."""
    path = sqlite_path(opts.database_url)
    return FastResolver(path, service.served) if path is not None else None


@dataclass
class LiveIdNode:
    """A running identifier node: its stores and the ports it actually listens on."""

    store: IdentifierStore
    service: IdentifierService
    udp_port: int
    tcp_port: int
    http_port: int | None
    mirror: Mirror | None = None
    resolver: RecursiveResolver | None = None
    #: where the node's writes, listings and secret checks run
    offload: Offload | None = None

    @property
    def resolver_cache(self) -> ResolverCache | None:
        return self.resolver.cache if self.resolver is not None else None

    @property
    def follower(self) -> ChangeFollower | None:
        return self.resolver.follower if self.resolver is not None else None


@contextlib.asynccontextmanager
async def identifier_node(opts: IdServerOptions, *, http: bool = True,
                          restarts: Counter | None = None,
                          on_auth_failure: AuthFailureHook | None = None,
                          on_violation: ViolationHook | None = None,
                          ) -> AsyncIterator[LiveIdNode]:
    """Run an identifier node (native UDP/TCP, and the HTTP JSON API unless ``http`` is
    false) while the context is open. Port 0 picks a free HTTP port (the native ports must
    be given: the node's site information names them before they are bound). The mirror and
    the log trimmer are restarted when they fail, counted in ``restarts``. Failed admin
    authentications of both protocols go to ``on_auth_failure(host, reason, fingerprint)``
    (the node's security monitor), malformed native requests to ``on_violation("malformed",
    host, detail)``."""
    opts.check()  # before binding anything
    restarts = restarts if restarts is not None else task_restarts()
    with contextlib.ExitStack() as closing:
        sock = _http_socket(opts) if http else None
        if sock is not None:
            closing.callback(sock.close)
            opts = replace(opts, http_port=sock.getsockname()[1])
        store, service, site = open_identifier_node(opts, http=http)
        closing.callback(store.close)
        fast = fast_resolver(opts, service)
        if fast is not None:
            closing.callback(fast.close)
        async with contextlib.AsyncExitStack() as stack:
            # Writes, listings and secret checks of both protocols (closed after the servers)
            offload = await stack.enter_async_context(Offload())
            handler = node_handler(opts, service, site, offload)
            handler.throttle.on_failure = on_auth_failure
            server = await stack.enter_async_context(_native_server(opts, handler, fast,
                                                                    on_violation))
            http_port = opts.http_port if sock is not None else None
            await stack.enter_async_context(workers(opts, server.udp_port, http_port))
            mirror = _mirror(opts, store)
            failed: Exception | None = None
            async with asyncio.TaskGroup() as tg:
                background = [tg.create_task(supervise(
                    "identifier-log-trim", lambda: _trim_forever(store, opts), restarts))]
                if mirror is not None:
                    background.append(tg.create_task(supervise("mirror", mirror.run, restarts)))
                background += _follow_changes(tg, handler, restarts)
                web = None
                if sock is not None:
                    web = embedded_server(
                        _http_app(opts, store, service, fast, offload, on_auth_failure),
                        proxies=opts.trusted_proxies)
                    tg.create_task(web.serve(sockets=[sock]))
                try:
                    yield LiveIdNode(store, service, server.udp_port, server.tcp_port,
                                     http_port, mirror, handler.resolver, offload)
                except Exception as exc:  # noqa: BLE001 - the caller's, raised below, ungrouped
                    failed = exc
                finally:
                    if web is not None:
                        web.should_exit = True
                    for task in background:
                        task.cancel()
            if failed is not None:
                raise failed


def task_restarts() -> Counter:
    """A restart counter of its own, for a node that exports no platform metrics."""
    return Counter("millnet_task_restarts", "Background tasks restarted after a failure",
                   ["task"], registry=CollectorRegistry())


def _mirror(opts: IdServerOptions, store: IdentifierStore) -> Mirror | None:
    if not opts.mirror_of:
        return None
    key = prefix_key(opts.prefix)
    return Mirror(store, opts.mirror_of, ValueReference(f"{key}/{ADMIN_SUFFIX}", SECKEY_INDEX),
                  read_secret(opts.admin_secret_file), opts.data_dir, prefix_handle(key))


def _http_socket(opts: IdServerOptions) -> socket.socket:
    try:
        return listening_socket(opts.host, opts.http_port, reuse_port=opts.workers > 1)
    except OSError as exc:
        raise ConfigError("identifiers.http_port",
                          f"cannot listen on {opts.host}:{opts.http_port} (TCP): "
                          f"{exc.strerror or exc}") from None


@contextlib.asynccontextmanager
async def _native_server(opts: IdServerOptions, handler: NativeHandler,
                         fast: FastResolver | None, on_violation: ViolationHook | None = None,
                         ) -> AsyncIterator[NativeServer]:
    """The node's UDP and TCP listeners while the context is open; ConfigError naming the
    key and port that cannot be bound."""
    server = NativeServer(handler, opts.host, opts.udp_port, opts.tcp_port, fast=fast,
                          reuse_port=opts.workers > 1, on_violation=on_violation)
    try:
        await server.__aenter__()
    except OSError as exc:
        # UDP is bound first: TCP was refused if its port is taken.
        udp = _tcp_free(opts.host, opts.tcp_port)
        key, proto, port = (("identifiers.udp_port", "UDP", opts.udp_port) if udp else
                            ("identifiers.tcp_port", "TCP", opts.tcp_port))
        raise ConfigError(key, f"cannot listen on {opts.host}:{port} ({proto}): "
                               f"{exc.strerror or exc}") from None
    try:
        yield server
    finally:
        await server.__aexit__(None, None, None)
        # A closed transport lets go of its socket on the loop's next turn: give it that
        # turn, so the ports are free again when this context is left.
        await asyncio.sleep(0)


def _tcp_free(host: str, port: int) -> bool:
    try:
        listening_socket(host, port).close()
    except OSError:
        return False
    return True


async def _trim_forever(store: IdentifierStore, opts: IdServerOptions) -> None:
    while True:
        await asyncio.sleep(opts.log_trim_interval)
        trimmed = await asyncio.to_thread(trim_log, store, opts.log_keep)
        if trimmed:
            log.info("trimmed %d replication log rows", trimmed)


def _http_app(opts: IdServerOptions, store: IdentifierStore, service: IdentifierService,
              fast: FastResolver | None, offload: Offload,
              on_auth_failure: AuthFailureHook | None = None) -> ASGIApp:
    routes = [*batch_routes(service), *replication_routes(service, opts.prefix),
              *change_routes(store)]
    return create_handle_app(store, service, fast=fast, routes=routes, offload=offload,
                             on_auth_failure=on_auth_failure)


def _follow_changes(tg: asyncio.TaskGroup, handler: NativeHandler,
                    restarts: Counter) -> list[asyncio.Task[None]]:
    """The resolver's change follower, in the node's task group (restarted if it fails)."""
    follower = handler.resolver.follower if handler.resolver is not None else None
    if follower is None:
        return []
    return [tg.create_task(supervise("change-follower", follower.run, restarts))]


@contextlib.asynccontextmanager
async def workers(opts: IdServerOptions, udp_port: int,
                  http_port: int | None) -> AsyncIterator[None]:
    """``opts.workers - 1`` more processes answering UDP and HTTP on the same ports
    (SO_REUSEPORT: the kernel spreads datagrams and connections by source address), each with
    the full handler and API over the same database; TCP and the mirror stay with this
    process. Stopped with the context, and by themselves if this process dies."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, args=(opts, udp_port, http_port, os.getpid()),
                             name=f"millnet-worker-{i}", daemon=True)
             for i in range(1, opts.workers)]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.to_thread(proc.join, 10)


def _worker(opts: IdServerOptions, udp_port: int, http_port: int | None, parent: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt), \
            asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_worker(opts, udp_port, http_port, parent))


async def _serve_worker(opts: IdServerOptions, udp_port: int, http_port: int | None,
                        parent: int) -> None:
    store, service, site = open_identifier_node(opts, setup=False, http=http_port is not None)
    fast = fast_resolver(opts, service)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with Offload() as offload:
            handler = node_handler(opts, service, site, offload)
            async with NativeServer(handler, opts.host, udp_port, 0, fast=fast, reuse_port=True,
                                    tcp=False), asyncio.TaskGroup() as tg:
                background = _follow_changes(tg, handler, task_restarts())
                web = None
                if http_port is not None:
                    sock = listening_socket(opts.host, http_port, reuse_port=True)
                    web = embedded_server(_http_app(opts, store, service, fast, offload),
                                          proxies=opts.trusted_proxies)
                    tg.create_task(web.serve(sockets=[sock]))
                while not stop.is_set() and os.getppid() == parent:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await stop.wait()
                if web is not None:
                    web.should_exit = True
                for task in background:
                    task.cancel()
    finally:
        if fast is not None:
            fast.close()
        store.close()


def describe(opts: IdServerOptions, live: LiveIdNode) -> str:
    """One log line saying what the identifier service serves and where."""
    return (f"identifier node {opts.prefix} ({opts.role}{', recursive' if opts.recursive else ''}"
            f") on udp/{live.udp_port} tcp/{live.tcp_port} http/{live.http_port}"
            f"{f', parent {opts.parent}' if opts.parent else ''}"
            f"{f', mirror of {opts.mirror_of}' if opts.mirror_of else ''}; identifier database "
            f"{make_url(opts.database_url).render_as_string(hide_password=True)}")
