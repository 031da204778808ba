"""kill -9 of an edge process mid-stream: nothing the buffer acknowledged is missing upstream."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from millnet.node import build_node, running
from tests.integration.test_edge_forwarding import T0, central_rows
from tests.servers import Mosquitto
from tests.support.nodes import connected, node_settings, until

# The edge process: produce readings (mode "produce", acknowledged ones noted in a file as the
# pipeline acknowledges them, i.e. after the buffer's fsync) or only forward ("drain").
EDGE = """
import asyncio, sys
from pathlib import Path
from millnet.connectivity.edge import EdgeSection
from millnet.connectivity.edge.local import LocalEdge
from millnet.model import DataType, PointSpec

port, base, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
T0 = int(sys.argv[4])

async def main():
    section = EdgeSection.model_validate({"host": "127.0.0.1", "port": port,
        "group_id": "Wuxi", "edge_node_id": "Pumps.L1", "keepalive": 5})
    edge = LocalEdge.open(section, base, batch_max_delay=0.01)
    async with edge.running():
        sink = edge.sink("crash")
        ids = await sink.bind(("Plant", "Pumps", "L1", "Pump-1"),
                              [PointSpec("flow", DataType.DOUBLE)])
        acked = open(base / "acked", "a", buffering=1)
        i = 0
        while mode == "produce":
            await sink.capacity()
            for _ in range(20):
                sink.emit(ids["flow"], (T0 + i) * 1_000_000, float(i))
                i += 1
            sink.done(20)
            edge.pipeline.add_ack(lambda n=i: acked.write(f"{n}\\n"))
            await asyncio.sleep(0.002)
        while edge.buffer.status().records:
            await asyncio.sleep(0.05)
        print("drained", flush=True)

asyncio.run(main())
"""


async def _edge(port: int, base: Path, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", EDGE, str(port), str(base), mode, str(T0),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)


def test_kill_9_of_the_edge_loses_nothing_acknowledged(mosquitto: Mosquitto,
                                                       tmp_path: Path) -> None:
    base = tmp_path / "edge"
    base.mkdir()

    def acked() -> int:
        path = base / "acked"
        lines = path.read_text().split() if path.exists() else []
        return int(lines[-1]) if lines else 0

    async def scenario() -> None:
        central = build_node(node_settings(tmp_path / "central", mosquitto.port))
        async with running(central, api=False):
            await until(lambda: connected(central, "sparkplug"), what="central connected")
            proc = await _edge(mosquitto.port, base, "produce")
            try:
                await until(lambda: acked() >= 3000, limit_s=30, what="3000 acknowledged")
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
            last = acked()
            proc = await _edge(mosquitto.port, base, "drain")
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"drained"
            await proc.wait()
            want = {(T0 + i) * 1_000_000 for i in range(last)}
            deadline = time.monotonic() + 10
            while True:
                got = {r.ts_ns for r in central_rows(central, "flow") if r.value is not None}
                if want <= got or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            missing = sorted(want - got)
            assert not missing, f"{len(missing)} acknowledged readings missing: {missing[:5]}"

    asyncio.run(scenario())
