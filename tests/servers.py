"""Real servers for tests: each started from its installed binary on a free port in a temp dir.

A test can stop, kill -9 and restart them. When the binary is missing the fixture skips with the
reason. Nothing here touches the machine's own services on the standard ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from millnet.connectivity.broker import Mosquitto, find_mosquitto, free_port

__all__ = ["Mosquitto", "Postgres", "find_mosquitto", "postgres_bindir"]

PG_BINDIR_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@dataclass
class Postgres:
    """A private PostgreSQL cluster (initdb + pg_ctl), run as the ``postgres`` user when root."""

    bindir: Path
    workdir: Path
    port: int = field(default_factory=free_port)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.workdir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        if not data.exists():
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                      "-E", "UTF8")
        self._run(
            "pg_ctl", "-D", str(data), "-w", "-l", str(self.workdir / "log"), "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop")


def postgres_bindir() -> Path | None:
    for bindir in PG_BINDIR_CANDIDATES:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None
