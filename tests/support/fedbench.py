"""A rough figure of one federation hop: events/s from a child's outbox applied at its parent.

``python -m tests.support.fedbench [COUNT]``: the parent is a process (tests.support.fednode)
on SQLite, the child runs its sender loop here; COUNT events are queued first, then the time
to drain them is measured (batches of 1,000, each applied in one transaction). Prints a JSON
line. Not a timed test: the figure depends on the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from millnet.federation.enroll import enroll, issue_token
from tests.integration.test_federation_link_crash import ROOT, free_port, wait_port
from tests.support.federation import EVENT, effects, node


async def drain(count: int, tmp: Path, url: str, token: str) -> float:
    child = node(tmp / "child", "plant-a", "enterprise", heartbeat_s=0.5)
    enroll(url, token, child.identity, child.engine)
    assert child.outbox_up is not None
    for start in range(0, count, 5000):
        child.outbox_up.enqueue_many(
            [(EVENT, {"id": f"e-{i}", "kind": "port_scan", "src": "10.0.0.7", "severity": 3},
              None) for i in range(start, min(count, start + 5000))])
    began = time.perf_counter()
    task = asyncio.create_task(child.run())
    while child.outbox_up.status().depth:  # noqa: ASYNC110 - a database figure, no event
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - began
    task.cancel()
    child.close()
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "parent").mkdir()
        (tmp / "child").mkdir()
        parent = node(tmp / "parent", "prov-32", "secondary")
        token = issue_token(parent.engine, "plant-a", "enterprise", "320500", "C38", "88.1", 600)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.fednode", "parent",
                                 str(tmp / "parent"), str(port)], cwd=ROOT)
        try:
            wait_port(port, time.monotonic() + 30)
            elapsed = asyncio.run(drain(count, tmp, f"http://127.0.0.1:{port}", token))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
        applied = len(effects(parent.engine))
        parent.close()
    print(json.dumps({"bench": "federation_hop", "events": count, "applied": applied,
                      "seconds": round(elapsed, 3), "events_per_s": round(count / elapsed)}))


if __name__ == "__main__":
    main()
