"""One enterprise node of ``millnet bench trace``: a registry with one tenant owning a prefix,
the EPCIS repository and trace API on uvicorn. Prints one JSON line (port, viewer and operator
tokens) when it serves. ``python -m millnet.bench.trace_node DIR NAME PREFIX PEERS_JSON``."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import uvicorn

from millnet.api import create_app
from millnet.config import Settings
from millnet.ingest.metrics import IngestMetrics
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.tracing import build_tracing, mount


def main(argv: list[str]) -> None:
    data, name, prefix, peers = Path(argv[0]), argv[1], argv[2], json.loads(argv[3])
    data.mkdir(parents=True, exist_ok=True)
    registry = Registry.open(f"sqlite:///{data / 'registry.sqlite'}")
    store = DuckDBTelemetryStore(data / "telemetry.duckdb", data / "archive")
    tenant = registry.ensure_tenant(name).id
    registry.set_identifier_prefixes(tenant, [prefix])
    settings = Settings.model_validate({"node": {"name": name},
                                        "trace": {"peers": peers, "timeout_s": 10.0}})
    tracing = build_tracing(settings, registry, store, tenant)
    app = create_app(registry, store, IngestMetrics(), node_name=name, role="enterprise")
    mount(app, tracing, "/api/v1")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    print(json.dumps({"port": port, "viewer": registry.create_token(tenant, "viewer", "b")[0],
                      "operator": registry.create_token(tenant, "operator", "b")[0]}),
          flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main(sys.argv[1:])
