"""The demo's monitoring federation (issue 13): the demo's own node is enterprise #1; a national
node, a secondary node and enterprise #2 run beside it, each a ``millnet node`` process with its
own data directory (under ``<demo data>/federation``), database, key and API port.

Enrollment uses the functions behind ``millnet federation token|enroll`` (one-off steps, no
need for a process each): the national issues the secondary's token, the secondary issues the
enterprises'. Unlike the manual recipe, a node is enrolled just *after* its process started
(its link retries until the pin is there): each process migrates its own database, and the
demo never migrates one itself, since Alembic's ``op`` is process-global and two migrations at
once in one process (the demo's node starting beside these steps) corrupt each other. A node
enrolled on an earlier run keeps its pin (its key and its parent's did not change); only the
parent's URL moves with the ports, given as ``federation.parent_url``.

Each child process gets ``PR_SET_PDEATHSIG``: if the demo dies, even by SIGKILL, the kernel
sends its nodes SIGTERM, so no node outlives the demo. The events and the situation are in
:mod:`millnet.demo_federation_events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from millnet.children import die_with_parent
from millnet.config import Settings, load_settings
from millnet.connectivity.broker import free_port
from millnet.db.engine import create_db_engine
from millnet.errors import MillnetError
from millnet.federation.enroll import enroll, issue_token, pinned_parent
from millnet.federation.identity import NodeIdentity
from millnet.model.assets import AssetKind
from millnet.monitoring import key_path
from millnet.registry import Registry

log = logging.getLogger("millnet.demo")
_LINK_LOG = logging.getLogger("millnet.federation")

#: enterprise #1, the demo's own node (its plant is in Suzhou): GB/T 2260 and GB/T 4754 C34,
#: general-purpose machinery
ENTERPRISE_1 = "ent-suzhou-machinery"
ENTERPRISE_1_PLACE = ("320500", "C34")
START_TIMEOUT_S = 90.0  # two shared cores, migrations on first start
STOP_TIMEOUT_S = 15.0
#: how the demo's enterprises report: often, so that the situation fills in seconds
CHILD_LINK = {"heartbeat_s": 1.0, "summary_every_s": 2.0, "retry_first_s": 0.5,
              "retry_max_s": 2.0}

# Enterprise #2's control network, as its operators described the devices (the inventory reads
# the key=value words); the S7-1200 at V4.2.1 is what the demo's advisory hits.
PLANT_2 = (("PLC-A1", "Press line PLC vendor=Siemens model=S7-1200 firmware=V4.2.1 "
                      "address=10.20.1.11 mac=28:63:36:a1:00:11 protocols=s7comm"),
           ("PLC-A2", "Winding line PLC vendor=Siemens model=S7-1200 firmware=V4.2.1 "
                      "address=10.20.1.12 mac=28:63:36:a1:00:12 protocols=s7comm"),
           ("PLC-B1", "Test bench PLC vendor=Siemens model=S7-1500 firmware=V2.9.4 "
                      "address=10.20.2.11 protocols=s7comm"),
           ("HMI-1", "Operator panel vendor=Siemens model=KTP700 firmware=V17.0 "
                     "address=10.20.1.21 services=http"),
           ("GW-1", "Serial gateway vendor=Moxa model=NPort-5110 firmware=2.10 "
                    "address=10.20.1.31 protocols=modbus"))


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    data_dir: Path
    port: int
    region: str = ""
    sector: str = ""
    prefix: str = ""
    parent: NodeSpec | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """The node's whole configuration, as the manual recipe sets it."""
        env = {"MILLNET_NODE__NAME": self.name, "MILLNET_NODE__ROLE": self.role,
               "MILLNET_NODE__DATA_DIR": str(self.data_dir),
               "MILLNET_API__PORT": str(self.port), "MILLNET_MQTT__ENABLED": "false"}
        if self.role == "secondary":  # a province/industry node without a shared platform
            env["MILLNET_NODE__PLATFORM"] = "false"
        if self.parent is not None:
            env["MILLNET_FEDERATION__PARENT_URL"] = self.parent.url
            env |= {f"MILLNET_FEDERATION__{k.upper()}": str(v) for k, v in CHILD_LINK.items()}
        return env

    def settings(self) -> Settings:
        return load_settings(None, environ=self.environ())


def plan(base: Path) -> tuple[NodeSpec, NodeSpec, NodeSpec]:
    """The national, secondary and enterprise #2 nodes (Shanghai Pudong, C38 electrical
    machinery), on free ports."""
    national = NodeSpec("national-cn", "national", base / "national", free_port())
    secondary = NodeSpec("sec-east-manufacturing", "secondary", base / "secondary",
                         free_port(), "310000", "C", "88.100", national)
    enterprise = NodeSpec("ent-pudong-drives", "enterprise", base / "enterprise-2",
                          free_port(), "310115", "C38", "88.100.7", secondary)
    return national, secondary, enterprise


def child_overrides(secondary: NodeSpec) -> dict[str, Any]:
    """The ``[federation]`` settings of enterprise #1 (the demo's own node)."""
    return {"parent_url": secondary.url, **CHILD_LINK}


# -- enrollment (the functions behind `millnet federation token|enroll`) ---------------------

# Each runs on a database its node has migrated (never ``upgrade`` here: see the docstring).

def _enrolled(settings: Settings) -> bool:
    engine = create_db_engine(settings.registry_url)
    try:
        with engine.connect() as conn:
            return pinned_parent(conn) is not None
    finally:
        engine.dispose()


def enroll_child(parent: Settings, parent_url: str, child: Settings, region: str, sector: str,
                 prefix: str) -> bool:
    """Issue a token at ``parent`` (its database) and redeem it as ``child``; False when the
    child was enrolled on an earlier run. Blocking."""
    if _enrolled(child):
        return False
    engine = create_db_engine(parent.registry_url)
    try:
        token = issue_token(engine, child.node.name, child.node.role, region, sector, prefix,
                            parent.federation.token_ttl_s)
    finally:
        engine.dispose()
    engine = create_db_engine(child.registry_url)
    try:
        identity = NodeIdentity.load_or_create(key_path(child), child.node.name)
        enroll(parent_url, token, identity, engine)
    finally:
        engine.dispose()
    return True


def _registry(settings: Settings) -> Registry:
    return Registry(create_db_engine(settings.registry_url))


def admin_token(settings: Settings, name: str) -> str:
    """A node-wide admin token of the node (``millnet token create --role admin``)."""
    registry = _registry(settings)
    try:
        return registry.create_token(None, "admin", name)[0]
    finally:
        registry.close()


def seed_plant(settings: Settings) -> None:
    """Enterprise #2's registered devices (once; the registry keeps them across runs)."""
    registry = _registry(settings)
    try:
        tenant = registry.ensure_tenant(settings.mqtt.tenant)
        if registry.list_devices(tenant.id):
            return
        parent = None
        for kind, name in ((AssetKind.ENTERPRISE, "pudong-drives"), (AssetKind.SITE, "Pudong"),
                           (AssetKind.AREA, "Motors"), (AssetKind.LINE, "L1")):
            parent = registry.create_asset(tenant.id, parent, kind, name).id
        for name, description in PLANT_2:
            registry.create_asset(tenant.id, parent, AssetKind.DEVICE, name, description)
    finally:
        registry.close()


# -- the node processes ----------------------------------------------------------------------

@dataclass
class NodeProcess:
    spec: NodeSpec
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]

    @property
    def log_path(self) -> Path:
        return self.spec.data_dir / "node.log"

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def start_node(spec: NodeSpec) -> NodeProcess:
    """``millnet node`` with the spec's environment (and nothing of the demo's own MILLNET_*
    settings), its output in ``<data_dir>/node.log``."""
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLNET_")}
    log_file = (spec.data_dir / "node.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "millnet", "node"], env=env | spec.environ(),
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(os.getpid()))  # noqa: PLW1509 - prctl only, see above
    return NodeProcess(spec, proc, log_file)


async def wait_listening(node: NodeProcess, timeout: float = START_TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if node.proc.poll() is not None:
            raise MillnetError(f"node {node.spec.name} exited ({node.proc.returncode}):\n"
                               f"{node.tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", node.spec.port)
        except OSError:
            if loop.time() > deadline:
                raise MillnetError(f"node {node.spec.name} did not listen on "
                                   f":{node.spec.port} within {timeout:.0f} s") from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


async def stop_node(node: NodeProcess) -> None:
    """SIGTERM (the node drains and closes its stores), SIGKILL if it hangs."""
    if node.proc.poll() is None:
        node.proc.terminate()
        try:
            await asyncio.to_thread(node.proc.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("node %s did not stop in %.0f s: killed", node.spec.name,
                        STOP_TIMEOUT_S)
            node.proc.kill()
            await asyncio.to_thread(node.proc.wait)
    node.log_file.close()


# -- the federation, brought up in the background --------------------------------------------

@dataclass
class Federation:
    national: NodeSpec
    secondary: NodeSpec
    enterprise: NodeSpec
    processes: list[NodeProcess] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    national_token: str = ""
    enterprise_token: str = ""
    failed: str = ""

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.processes]

    async def start(self) -> None:
        """National, then the secondary enrolled under it, then enterprise #2 under that."""
        try:
            await self._start()
        except (MillnetError, OSError) as exc:
            self.failed = str(exc)
            raise
        finally:
            if len(self.processes) < 3 and not self.failed:  # cancelled, or a database error
                self.failed = "the federation's nodes did not all start (see their node.log)"
            self.ready.set()

    async def _start(self) -> None:
        nat, sec, ent = self.national, self.secondary, self.enterprise
        nat_s, sec_s, ent_s = nat.settings(), sec.settings(), ent.settings()
        await self._run(nat)
        self.national_token = await asyncio.to_thread(admin_token, nat_s, "demo")
        await self._run(sec)
        await asyncio.to_thread(enroll_child, nat_s, nat.url, sec_s, sec.region, sec.sector,
                                sec.prefix)
        await self._run(ent)
        await asyncio.to_thread(seed_plant, ent_s)
        self.enterprise_token = await asyncio.to_thread(admin_token, ent_s, "demo")
        await asyncio.to_thread(enroll_child, sec_s, sec.url, ent_s, ent.region, ent.sector,
                                ent.prefix)

    async def _run(self, spec: NodeSpec) -> None:
        node = start_node(spec)
        self.processes.append(node)
        await wait_listening(node)

    async def enroll_demo_node(self, settings: Settings) -> bool:
        """Enroll enterprise #1 (the demo's own node, already running: its link retries until
        the pin is there) under the secondary."""
        region, sector = ENTERPRISE_1_PLACE
        try:
            return await asyncio.to_thread(enroll_child, self.secondary.settings(),
                                           self.secondary.url, settings, region, sector,
                                           "88.100.5")
        finally:
            _LINK_LOG.setLevel(logging.NOTSET)

    async def stop(self) -> None:
        # Every node is told at once (a second Ctrl-C cancelling the waits below leaves none
        # untold; and if the demo dies, the parent-death signal tells them).
        for node in reversed(self.processes):
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in reversed(self.processes):
            await stop_node(node)


@contextlib.asynccontextmanager
async def federation(data_dir: Path) -> AsyncIterator[Federation]:
    """Start the three nodes in the background while the context is open; wait for
    ``ready`` before using them. Every process is stopped on the way out."""
    fed = Federation(*plan(data_dir / "federation"))
    # Until the demo's node is enrolled its link retries every 2 s, each time with a warning
    # that would fill the console: quiet until enroll_demo_node.
    _LINK_LOG.setLevel(logging.ERROR)
    # The demo's node exchanges with its parent every second, and the scanner sends 150
    # requests: one INFO line each from httpx would bury the demo's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    starting = asyncio.create_task(fed.start())
    try:
        yield fed
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, MillnetError, OSError):
            await starting
        await fed.stop()
