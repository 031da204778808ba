"""The peer the ingest benchmark is compared with: InfluxDB 1.x's direct HTTP write, same machine.

    .venv/bin/python benchmarks/bench_influx_peer.py [--points 6000000] [--series 1000]

Starts Debian's ``influxd`` (package influxdb) on free ports in a temporary directory, then
writes line protocol over HTTP from separate processes: ``--series`` series of 10 fields each,
one line per series and second, ``--lines-per-request`` lines per POST, values from a random
walk rounded to 0.1 (sensor-like). Measures points per second (fields written) from the first
request until the last is answered, then counts the stored points with a query: a run that
stores fewer than it wrote fails (exit 1), as every benchmark here must.

Ends with one JSON line. Exits 2 with a message when ``influxd`` is not installed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from millnet.bench.versions import versions

FIELDS = 10
T0_S = 1_767_225_600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    return f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
"""


def _query(port: int, q: str, method: str = "GET") -> Any:
    url = f"http://127.0.0.1:{port}/query?" + urllib.parse.urlencode({"q": q, "db": "bench"})
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def _writer(port: int, worker: int, workers: int, series: int, seconds: int,
            lines_per_request: int, ready: Any, out: Any) -> None:
    """Build this worker's request bodies, then send them; returns (points, start, end).

    The bodies are built before the clock starts, so the figure is InfluxDB's, not Python's
    line-protocol formatting."""
    rng = random.Random(worker)
    mine = range(worker, series, workers)
    level = {s: [rng.uniform(10, 90) for _ in range(FIELDS)] for s in mine}
    bodies: list[bytes] = []
    buf: list[str] = []
    sent = 0
    for t in range(seconds):
        for s in mine:
            values = level[s]
            for i in range(FIELDS):
                values[i] = round(values[i] + rng.gauss(0, 0.1), 1)
            fields = ",".join(f"f{i}={v}" for i, v in enumerate(values))
            buf.append(f"m,dev=d{s} {fields} {T0_S + t}")
            sent += FIELDS
            if len(buf) >= lines_per_request:
                bodies.append("\n".join(buf).encode())
                buf.clear()
    if buf:
        bodies.append("\n".join(buf).encode())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    ready.wait()  # every worker has built its bodies
    start = time.time()
    for body in bodies:
        conn.request("POST", "/write?db=bench&precision=s", body)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"influxd answered {resp.status}")
    end = time.time()
    conn.close()
    out.put((sent, start, end))


def run(points: int, series: int, workers: int, lines_per_request: int) -> dict[str, Any]:
    binary = shutil.which("influxd")
    if binary is None:
        print("influxd not installed (apt-get install influxdb)", file=sys.stderr)
        raise SystemExit(2)
    seconds = max(1, points // (series * FIELDS))
    with tempfile.TemporaryDirectory(prefix="influx-peer-") as tmp:
        root = Path(tmp)
        http_port, rpc_port = _free_port(), _free_port()
        (root / "influxdb.conf").write_text(_config(root, http_port, rpc_port))
        proc = subprocess.Popen([binary, "-config", str(root / "influxdb.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    _query(http_port, "CREATE DATABASE bench", "POST")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            ctx = mp.get_context("spawn")
            ready, out = ctx.Barrier(workers), ctx.Queue()
            procs = [ctx.Process(target=_writer, args=(http_port, i, workers, series, seconds,
                                                       lines_per_request, ready, out))
                     for i in range(workers)]
            for p in procs:
                p.start()
            results = [out.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
            sent = sum(r[0] for r in results)
            elapsed = max(r[2] for r in results) - min(r[1] for r in results)
            counted = _query(http_port, "SELECT count(*) FROM m")
            row = counted["results"][0]["series"][0]["values"][0][1:]
            stored = int(sum(row))
            size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        finally:
            proc.terminate()
            proc.wait(30)
    version = subprocess.run([binary, "version"], check=False, capture_output=True,
                             text=True).stdout.strip()
    lost = sent - stored
    return {
        "ok": lost == 0,
        "points_per_second": round(sent / elapsed) if lost == 0 else None,
        "points": sent, "stored": stored, "lost_points": lost, "seconds": round(elapsed, 3),
        "bytes_per_point_on_disk": round(size / max(stored, 1), 3),
        "series": series, "fields": FIELDS, "workers": workers,
        "lines_per_request": lines_per_request, "influxd": version,
        "cpus": os.cpu_count(), "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=6_000_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lines-per-request", type=int, default=5_000)
    args = parser.parse_args()
    result = run(args.points, args.series, args.workers, args.lines_per_request)
    result["versions"] = versions()
    print(json.dumps(result))
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
