"""Per-tenant retention through the node's maintenance round, on the real stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from millnet.model import AssetKind, DataType, PointSpec, SampleBatch
from millnet.node import build_node
from millnet.telemetry.retention import NS_PER_DAY, maintain_once
from tests.support.nodes import node_settings


def test_each_tenant_keeps_its_own_days_hot(tmp_path: Path) -> None:
    node = build_node(node_settings(tmp_path, 1, mqtt={"enabled": False},
                                    telemetry={"retention_days": 30}))
    try:
        reg = node.registry
        short = reg.create_tenant("shortlived", retention_days=2)
        ids = {}
        for tenant in (node.tenant_id, short.id):
            path = [(AssetKind.ENTERPRISE, "E"), (AssetKind.SITE, "S"), (AssetKind.AREA, "A"),
                    (AssetKind.LINE, "L"), (AssetKind.DEVICE, "D")]
            device = reg.ensure_path(tenant, path)[-1]
            ids[tenant] = reg.upsert_points(tenant, device,
                                            [PointSpec("p", DataType.DOUBLE)])["p"]
        now = 1_767_225_600 * 10**9 + NS_PER_DAY // 2  # noon, 2026-01-01
        days = np.arange(10, dtype=np.int64)
        for sid in ids.values():
            node.store.write(SampleBatch(
                np.full(10, sid, np.int32), now - days * NS_PER_DAY,
                days.astype(np.float64), np.zeros(10, np.uint8)))
        before = {sid: node.store.query_range([sid], 0, now + 1) for sid in ids.values()}

        results = {r.tenant: r for r in maintain_once(node.store, node.retention_plan(), now)}

        assert results["shortlived"].rows == 7  # days older than 2 full days moved
        assert results["default"].rows == 0  # 30 days kept hot
        assert node.store.stats().archived_rows == 7
        for sid in ids.values():  # archived rows stay queryable, same answer as before
            assert node.store.query_range([sid], 0, now + 1) == before[sid]
    finally:
        node.close()
