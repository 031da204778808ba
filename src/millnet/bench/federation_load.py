"""One enterprise of the federation benchmark, as a process:
``python -m millnet.bench.federation_load DIR NAME PARENT_URL TOKEN RATE SECONDS``.

Not a full platform node: the enterprise's federation side only, as the node runs it
(:class:`FederationLinks` with the enterprise role over its own SQLite database, its sender loop
in this process), fed with ``security.event`` messages the way ``monitoring.forward_events``
enqueues the monitor's events: ``enqueue_many`` in batches, here every ``STEP_S`` to hold RATE
events per second. Event ``NAME-i`` is the i-th message of its upward outbox, so the bench can
tell from the outbox's last seq which events were sent by a given moment.

Protocol with the bench (files in DIR): after enrolling, the process writes ``ready``; it starts
sending at the wall-clock time the bench writes into ``go``, and after SECONDS writes ``sent``
(a JSON object: count, first and last send time, the worst lag behind schedule). The sender loop
keeps running until the bench ends the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from millnet.federation.enroll import enroll, pinned_parent
from millnet.federation.identity import NodeIdentity
from millnet.federation.links import FederationLinks
from millnet.federation.settings import FederationSection

STEP_S = 0.02
KIND = "security.event"
SETTINGS = FederationSection(heartbeat_s=1.0, retry_first_s=0.1, retry_max_s=1.0)


def event(name: str, i: int, at: str) -> tuple[str, dict[str, Any], None]:
    return KIND, {"id": f"{name}-{i}", "kind": "auth.brute_force", "severity": "medium",
                  "occurred_at": at, "count": 1, "target": "api"}, None


async def wait_go(data: Path) -> float:
    go = data / "go"
    while not go.exists():  # noqa: ASYNC110 - a file from another process, no event to await
        await asyncio.sleep(0.01)
    return float(go.read_text())


async def produce(links: FederationLinks, name: str, rate: float, seconds: float,
                  data: Path) -> None:
    """RATE events per second for SECONDS on a fixed schedule from the bench's start time."""
    box = links.outbox_up
    assert box is not None
    start = await wait_go(data)
    await asyncio.sleep(max(0.0, start - time.time()))
    total, sent, lag = round(rate * seconds), 0, 0.0
    first = last = time.time()
    while sent < total:
        now = time.time()
        due = min(total, int(rate * (now - start)) + 1)
        if due > sent:
            at = datetime.now(UTC).isoformat()
            await asyncio.to_thread(box.enqueue_many,
                                    [event(name, i, at) for i in range(sent + 1, due + 1)])
            last = time.time()
            # How late the last event of this batch was against its due time.
            lag = max(lag, last - (start + (due - 1) / rate))
            sent = due
        await asyncio.sleep(STEP_S)
    (data / "sent").write_text(json.dumps({"sent": sent, "first": first, "last": last,
                                           "lag_max_s": round(lag, 3)}))


async def main(data: Path, name: str, url: str, token: str, rate: float,
               seconds: float) -> None:
    identity = NodeIdentity.load_or_create(data / "federation.key", name)
    links = FederationLinks(SETTINGS, f"sqlite:///{data / 'load.sqlite'}", identity,
                            "enterprise")
    with links.engine.begin() as conn:
        enrolled = pinned_parent(conn) is not None
    if not enrolled:
        await asyncio.to_thread(enroll, url, token, identity, links.engine)
    (data / "ready").write_text("1")
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(links.run())
        tasks.create_task(produce(links, name, rate, seconds, data))


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), a[1], a[2], a[3], float(a[4]), float(a[5])))
