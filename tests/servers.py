"""Real servers for tests: each started from its installed binary on a free port in a temp dir.

A test can stop, kill -9 and restart them. When the binary is missing the fixture skips with the
reason. Nothing here touches the machine's own services on the standard ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BINDIR_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


@dataclass
class Mosquitto:
    """A private Mosquitto broker with persistence in ``workdir``."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            "max_packet_size 0\n"
            "log_dest none\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(  # noqa: S603
            [self.binary, "-c", str(conf)], cwd=self.workdir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


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
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603

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
