"""Helpers to run a real node (in this process) against a test broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from millnet.config import Settings, load_settings
from millnet.node import Node


def node_settings(tmp_path: Path, port: int, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, Any] = {
        "node": {"data_dir": str(tmp_path / "node")},
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"test-{port}"},
        "ingest": {"batch_max_delay_ms": 20},
        "api": {"port": 0},
    }
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_settings(None, environ={}, overrides=overrides)


def metric_value(node: Node, name: str, labels: dict[str, str] | None = None) -> float:
    return node.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def stored(node: Node) -> float:
    return metric_value(node, "millnet_ingest_samples_stored_total")


def connected(node: Node, source: str) -> bool:
    return metric_value(node, "millnet_source_connected", {"source": source}) == 1.0


async def until(predicate: Callable[[], bool], limit_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)
