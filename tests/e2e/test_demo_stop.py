"""`millnet demo` stopped by SIGTERM stops as Ctrl-C stops it, its private Mosquitto with it (a
broker left behind holds a port and a directory forever; test_demo_federation kills a demo
outright and finds its broker gone too)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from millnet.connectivity.broker import find_mosquitto, free_port

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="needs the mosquitto binary")


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], list[str], psutil.Process]:
    """The demo (single node) once its API is up, what it printed, and its broker."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "millnet", "demo", "--duration", "120", "--port",
         str(free_port()), "--no-federation", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(r"API http://\S+  token", line):
            break
    brokers = [c for c in psutil.Process(proc.pid).children()
               if c.name().startswith("mosquitto")]
    assert len(brokers) == 1, (seen[-20:], psutil.Process(proc.pid).children())
    return proc, seen, brokers[0]


def _gone(process: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_the_demo_like_ctrl_c(tmp_path: Path) -> None:
    proc, seen, broker = _start(tmp_path / "demo")
    try:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    out = "".join(seen) + rest
    assert proc.returncode == 0 and rest.rstrip().endswith("stopped"), out[-3000:]
    assert _gone(broker, 10), "the demo's broker outlived it"
