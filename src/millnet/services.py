"""What a node runs besides its platform, and all of it together: the identifier service
(:mod:`millnet.idnode`, configured by ``[identifiers]``), the monitoring federation of a node
without the platform (a national node), and :func:`serving` / :func:`run_node`, which run every
service of the node's role from one :class:`~millnet.config.Settings`. Part of the composition
root (the platform itself is :mod:`millnet.node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from millnet import heap
from millnet.config import Settings
from millnet.errors import ConfigError
from millnet.files import private_dir, private_umask
from millnet.idnode import AuthFailureHook, LiveIdNode, describe, identifier_node
from millnet.idoptions import (
    IdServerOptions,
    parse_delegation,
    parse_delegation_via,
    parse_service,
)
from millnet.node import Node, api_socket, build_node, open_monitoring, running
from millnet.registry import Registry
from millnet.serving import embedded_server
from millnet.supervise import supervise

if TYPE_CHECKING:
    from millnet.identifiers.wire.transport import ViolationHook
    from millnet.monitoring import Monitoring
    from millnet.security import SecurityMonitor

log = logging.getLogger("millnet.node")


def identifier_options(settings: Settings) -> IdServerOptions:
    """The identifier service's options: the ``[identifiers]`` section, ``node.role`` and
    ``node.data_dir``, and the API's trusted proxies (they front both HTTP APIs)."""
    ids = settings.identifiers
    if ids.admin_secret_file is None:
        raise ConfigError("identifiers.admin_secret_file", "required")
    return IdServerOptions(
        ids.prefix, settings.node.data_dir, ids.admin_secret_file, ids.host, ids.udp_port,
        ids.tcp_port, ids.http_port, settings.node.role, ids.parent or None,
        tuple(parse_delegation(d) for d in ids.delegates), ids.recursive,
        change_interval=ids.follow_changes_every, mirror_of=ids.mirror_of or None,
        workers=ids.workers, services=tuple(parse_service(v) for v in ids.services),
        delegates_via=tuple(parse_delegation_via(v) for v in ids.delegates_via),
        database=ids.database or None, advertise=ids.advertise or None,
        trusted_proxies=tuple(str(n) for n in settings.api.trusted_proxies))


@dataclass
class Services:
    """What a node runs, built but not started: the platform, the identifier service."""

    settings: Settings
    platform: Node | None
    identifiers: IdServerOptions | None
    #: A node without the platform (national) still runs the federation: its registry (API
    #: tokens, federation tables) and the monitoring.
    standalone: tuple[Registry, Monitoring] | None = None


@dataclass
class LiveServices:
    platform: Node | None
    identifiers: LiveIdNode | None


def build_services(settings: Settings) -> Services:
    """Check every service's configuration (files, addresses), then open the platform's
    stores; starts nothing."""
    if not settings.runs_platform and settings.node.role == "edge":
        raise ConfigError("node.platform", "an edge node runs its platform")
    ids = identifier_options(settings) if settings.identifiers.enabled else None
    if ids is not None:
        ids.check()
    if settings.runs_platform:
        return Services(settings, build_node(settings), ids)
    if not settings.federation.enabled:
        if ids is None:
            raise ConfigError("identifiers.enabled", f"a {settings.node.role} node without the "
                              "platform or the federation runs nothing unless identifiers are "
                              "enabled")
        return Services(settings, None, ids)
    private_umask()
    private_dir(settings.node.data_dir)
    registry = Registry.open(settings.registry_url)
    monitoring = open_monitoring(settings, registry)
    assert monitoring is not None  # not an edge node
    return Services(settings, None, ids, (registry, monitoring))


def _auth_hook(services: Services) -> AuthFailureHook | None:
    """Failed identifier admin authentications go to the node's security monitor."""
    security = _security(services)
    return None if security is None else security.auth.hook("handle")


def _violation_hook(services: Services) -> ViolationHook | None:
    """Malformed native Handle requests go to the node's security monitor."""
    security = _security(services)
    return None if security is None else security.violations.observe_violation


def _security(services: Services) -> SecurityMonitor | None:
    monitoring = services.standalone[1] if services.standalone is not None else (
        services.platform.monitoring if services.platform is not None else None)
    return None if monitoring is None else monitoring.security


@contextlib.asynccontextmanager
async def serving(services: Services) -> AsyncIterator[LiveServices]:
    """Run the node's services while the context is open: the identifier service first (the
    platform links to it), then the platform; stopped in the reverse order."""
    platform, options = services.platform, services.identifiers
    async with contextlib.AsyncExitStack() as stack:
        ids = None
        if options is not None:
            restarts = platform.metrics.restarts if platform is not None else None
            try:
                ids = await stack.enter_async_context(identifier_node(
                    options, restarts=restarts, on_auth_failure=_auth_hook(services),
                    on_violation=_violation_hook(services)))
            except BaseException:
                if platform is not None:
                    platform.close()
                raise
        if platform is not None:
            if ids is not None:  # its API resolves identifiers for the console
                platform.identifiers = ids.service
            await stack.enter_async_context(running(platform))
            if platform.ordering is not None and ids is not None and options is not None:
                _register_orders(platform, ids, options)
        if services.standalone is not None:
            await stack.enter_async_context(monitoring_only(services.settings,
                                                            *services.standalone))
        heap.freeze()  # every service's start-up state out of the collector's full passes
        yield LiveServices(platform, ids)


def _register_orders(platform: Node, ids: LiveIdNode, options: IdServerOptions) -> None:
    """New orders' identifiers are registered here, pointing at the order's status URL."""
    from millnet.ordering import attach_identifiers, handle_registrar

    assert platform.ordering is not None
    host = platform.settings.api.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a wildcard
    host = f"[{host}]" if ":" in host else host
    attach_identifiers(platform.ordering, handle_registrar(ids.service, options.prefix),
                       f"http://{host}:{platform.api_port}")


@contextlib.asynccontextmanager
async def monitoring_only(settings: Settings, registry: Registry,
                          monitoring: Monitoring) -> AsyncIterator[int]:
    """A node without the platform: the federation's jobs and its API (monitoring_app) on the
    API's address while the context is open; yields the port."""
    from millnet.api.app import monitoring_app
    from millnet.monitoring import jobs

    try:
        sock = api_socket(settings.api)
    except ConfigError:
        registry.close()
        raise
    restarts = Counter("millnet_monitoring_restarts", "Restarts of a monitoring job",
                       ["job"], registry=None)
    server = embedded_server(monitoring_app(registry, monitoring, node_name=settings.node.name),
                             proxies=[str(n) for n in settings.api.trusted_proxies])
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(supervise(name, job, restarts), name=name)
                     for name, job in jobs(monitoring).items()]
            serve = tg.create_task(server.serve(sockets=[sock]))
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True
                await asyncio.wait([serve])
                for task in tasks:
                    task.cancel()
    finally:
        registry.close()  # the monitoring's stores share its engine


async def run_node(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop reading, drain the pipeline and close the stores."""
    services = build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(services) as live:
        if live.identifiers is not None and services.identifiers is not None:
            log.info("%s", describe(services.identifiers, live.identifiers))
        if live.platform is not None:
            log.info("node %s (%s) serving API on http://%s:%s", settings.node.name,
                     settings.node.role, settings.api.host, live.platform.api_port)
        elif services.standalone is not None:
            log.info("node %s (%s) serving the federation on http://%s:%s", settings.node.name,
                     settings.node.role, settings.api.host, settings.api.port)
        await stop.wait()
        log.info("stopping")
