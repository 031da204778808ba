"""Issue 9, finding 4: databases, their write-ahead logs and secrets are private from creation
(the admin secret was readable with grep in a 0644 WAL)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from millnet.demo_ids import _secret
from millnet.idnode import IdServerOptions, open_identifier_node
from millnet.model import SampleBuffer
from millnet.node import build_node
from tests.support.nodes import node_settings


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The umask most shells start with; millnet must not depend on it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]}


def _assert_private(root: Path) -> None:
    modes = _modes(root)
    assert modes, root
    open_to_others = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not open_to_others


def test_node_databases_and_logs_are_private(tmp_path: Path, lax_umask: None) -> None:
    node = build_node(node_settings(tmp_path, 1883, mqtt={"enabled": False}))
    try:
        buf = SampleBuffer()
        buf.append(1, 1_767_225_600_000_000_000, 1.0)
        node.store.write(buf.freeze())
        node.registry.ensure_tenant("other")
        data = tmp_path / "node"
        names = {p.name for p in data.iterdir()}
        assert {"registry.sqlite", "telemetry.duckdb"} <= names
        assert any(n.endswith(".wal") for n in names)  # DuckDB's log exists right now
        _assert_private(data)
    finally:
        node.close()


def test_identifier_node_database_and_secrets_are_private(tmp_path: Path,
                                                          lax_umask: None) -> None:
    secret = _secret(tmp_path / "ids", "enterprise")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    opts = IdServerOptions("88.100.5", tmp_path / "ids" / "node", secret, "127.0.0.1", 0, 0, 0)
    store, _, _ = open_identifier_node(opts)
    try:
        names = {p.name for p in (tmp_path / "ids" / "node").iterdir()}
        assert "identifiers.sqlite-wal" in names
        _assert_private(tmp_path / "ids")
    finally:
        store.close()


def test_an_existing_open_data_folder_is_tightened(tmp_path: Path, lax_umask: None) -> None:
    data = tmp_path / "node"
    data.mkdir(mode=0o755)
    (data / "registry.sqlite").touch(mode=0o644)
    (data / "notes.txt").touch(mode=0o644)  # not ours to change
    node = build_node(node_settings(tmp_path, 1883, mqtt={"enabled": False}))
    node.close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "registry.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "notes.txt").stat().st_mode) == 0o644
