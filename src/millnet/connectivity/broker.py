"""Start a private Mosquitto broker (for the demo, the benchmark and the tests).

The broker listens on 127.0.0.1 only, on a free port, with its config, persistence and log in a
directory of its own; it can be stopped, killed and restarted on the same port.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from millnet.children import bound_to_this_process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s") \
                    from exc
            time.sleep(0.02)


def find_mosquitto() -> str | None:
    """The mosquitto binary; Debian installs it under /usr/sbin, often not on PATH."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Mosquitto:
    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        # Unlimited queues: the node's own flow control (MQTT 5 Receive Maximum, acknowledging
        # after the store commits) bounds what is in flight; the broker must not drop QoS 1.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            # Run as whoever started it: started as root, Mosquitto would switch to its
            # 'mosquitto' user, and the switch clears the parent-death signal (prctl(2)).
            f"user {getpass.getuser()}\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [self.binary, "-c", str(conf)], cwd=self.workdir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # A demo, benchmark or test killed outright takes its broker with it.
            preexec_fn=bound_to_this_process(),  # noqa: PLW1509 - prctl only
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """kill -9: no clean shutdown, no final persistence write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
