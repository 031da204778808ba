"""A federation chain of real ``millnet node`` processes on loopback, for the federation
benchmark and the end-to-end test: start, kill -9, restart, enroll with one-time tokens through
the CLI exactly as an operator would, and count at a parent how often each forwarded security
event was applied.

Counting applications: the national node keeps forwarded events in ``fed_events``, keyed by
(child, origin, event id) and written as an upsert, so a second application of one event would
be invisible there. :func:`install_apply_log` adds SQLite triggers on that table which log every
insert *and* update into ``bench_applied`` with the time of the write; they run inside the
transaction that applies the message, so an application that is rolled back leaves no row, and
an event applied twice leaves two.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from millnet.connectivity.broker import free_port
from millnet.errors import MillnetError

# The link settings of every node of a chain: a child retries a restarted parent within a
# second (the default backoff grows to 60 s) and pulls downward messages every second.
FAST_LINKS = {"MILLNET_FEDERATION__HEARTBEAT_S": "1", "MILLNET_FEDERATION__RETRY_FIRST_S": "0.1",
              "MILLNET_FEDERATION__RETRY_MAX_S": "1"}


@dataclass
class ChainNode:
    """One node of the chain: its settings as environment variables, its process."""

    name: str
    role: str
    root: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.data / "registry.sqlite"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        # Settings of the calling environment must not leak into the chain's nodes.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MILLNET_")}
        env.update({"MILLNET_NODE__NAME": self.name, "MILLNET_NODE__ROLE": self.role,
                    "MILLNET_NODE__DATA_DIR": str(self.data),
                    "MILLNET_API__PORT": str(self.port), "MILLNET_MQTT__ENABLED": "false",
                    **FAST_LINKS, **self.env_extra})
        return env

    def cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``millnet ARGS`` with this node's settings; its stdout, stripped."""
        done = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "millnet", *args], env=self.env(),
            capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise MillnetError(f"millnet {' '.join(args[:2])} ({self.name}) failed: "
                               f"{done.stderr.decode(errors='replace')[-1500:]}")
        return done.stdout.decode().strip()

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "millnet", "node"],
                                         env=self.env(), stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash or a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the node answers its health route (it serves once its stores are open):
        ``/health`` of a national node's federation app, the platform's ``/healthz``."""
        path = "/health" if self.role == "national" else "/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise MillnetError(f"node {self.name} exited ({self.proc.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.1)
        raise MillnetError(f"node {self.name} not ready within {timeout:g} s")

    def admin_token(self) -> str:
        """A node-wide admin API token, as ``millnet token create --role admin`` makes one, but
        in this process: on 2 shared cores each CLI run costs seconds of imports."""
        from millnet.registry import Registry

        registry = Registry.open(f"sqlite:///{self.db}")
        try:
            return registry.create_token(None, "admin", "chain-admin")[0]
        finally:
            registry.close()


def cpu_seconds(proc: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU time of a running process so far (Linux /proc), 0 when gone."""
    if proc is None or proc.poll() is not None:
        return 0.0
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enroll(parent: ChainNode, child: ChainNode, region: str, sector: str, prefix: str) -> None:
    """The operators' recipe: a one-time token from the parent, redeemed by the child (which
    must not run yet: it reads its pinned parent at start)."""
    token = parent.cli("federation", "token", child.name, "--role", child.role,
                       "--region", region, "--sector", sector, "--prefix", prefix)
    child.data.mkdir(parents=True, exist_ok=True)
    child.cli("federation", "enroll", "--parent", parent.url, "--token", token.splitlines()[-1])


def issue_token(parent: ChainNode, child: str, region: str, sector: str, prefix: str,
                role: str = "enterprise") -> str:
    """A token for ``child`` of ``parent``, as ``millnet federation token`` issues
    it, in this process (the parent's database must exist)."""
    from millnet.db.engine import create_db_engine
    from millnet.db.migrate import upgrade
    from millnet.federation import enroll as enrollment

    engine = create_db_engine(f"sqlite:///{parent.db}")
    try:
        upgrade(engine)
        return enrollment.issue_token(engine, child, role, region, sector, prefix, 3600)
    finally:
        engine.dispose()


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read a node's database while it runs (SQLite in WAL mode: readers never block it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


_APPLY_LOG = """
CREATE TABLE IF NOT EXISTS bench_applied (origin TEXT, event_id TEXT, at REAL);
CREATE TRIGGER IF NOT EXISTS bench_applied_insert AFTER INSERT ON fed_events BEGIN
  INSERT INTO bench_applied VALUES (NEW.origin, NEW.event_id,
                                    (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER IF NOT EXISTS bench_applied_update AFTER UPDATE ON fed_events BEGIN
  INSERT INTO bench_applied VALUES (NEW.origin, NEW.event_id,
                                    (julianday('now') - 2440587.5) * 86400.0);
END;
"""


def install_apply_log(db: Path) -> None:
    """Log every application of a forwarded event at this node (see the module docstring);
    the database must be migrated already (``millnet federation token`` does it)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.executescript(_APPLY_LOG)
    finally:
        conn.close()


def applications(db: Path, origin_prefix: str = "") -> Counter[tuple[str, str]]:
    """How many times each (origin, event id) was applied at the node of ``db``."""
    rows = query(db, "SELECT origin, event_id, COUNT(*) FROM bench_applied "
                     "WHERE origin LIKE ? GROUP BY origin, event_id", origin_prefix + "%")
    return Counter({(str(o), str(e)): int(str(n)) for o, e, n in rows})


def current_policy(db: Path) -> str | None:
    """The forwarding policy a node received from its parent (its JSON), None before any."""
    rows = query(db, "SELECT value FROM fed_settings WHERE name = 'policy'")
    return str(rows[0][0]) if rows else None


def wait_policy(node: ChainNode, min_severity: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        policy = current_policy(node.db)
        if policy is not None and f'"{min_severity}"' in policy:
            return
        time.sleep(0.2)
    raise MillnetError(f"{node.name} did not receive the policy within {timeout:g} s")
