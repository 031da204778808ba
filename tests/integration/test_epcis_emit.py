"""The node's own EPCIS events: a line's good-part counter crossing batch boundaries makes a
batch start, a transformation (parts consumed -> batch) and a packing, stored through the
capture path; a counter reset starts a new batch; a tenant without prefix emits nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from millnet.registry import Registry
from millnet.trace.emit import Emitter, LineCounter
from millnet.trace.store import EpcisStore, EventFilter


def test_batches_from_a_line_counter(tmp_path: Path) -> None:
    registry = Registry.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    tenant = registry.ensure_tenant("acme").id
    bare = registry.ensure_tenant("bare").id
    store = EpcisStore(registry.engine)
    good = [0.0]
    clock = [datetime(2026, 3, 2, 8, tzinfo=UTC)]
    emitter = Emitter(
        store, lambda: [LineCounter(tenant, 7, "e/s/a/l1", good[0]),
                        LineCounter(bare, 8, "x/s/a/l1", good[0])],
        prefix_of=lambda t: "88.100.5" if t == tenant else None, batch_size=10,
        now=lambda: clock[0])
    assert emitter.tick() == 1  # the first batch starts
    for count in (4.0, 9.0, 10.0, 12.0, 25.0, 3.0):
        good[0] = count
        clock[0] += timedelta(minutes=1)
        emitter.tick()
    events = store.events(EventFilter(tenant_id=tenant, limit=100))
    steps = [(e.event_type, e.biz_step) for e in events]
    # 0: start; 10: finish+pack+start; 25 (15 since 10): finish+pack+start; 3: reset -> start
    assert steps.count(("TransformationEvent", "assembling")) == 2
    assert steps.count(("ObjectEvent", "packing")) == 2
    assert steps.count(("ObjectEvent", "commissioning")) == 4
    made = [e for e in events if e.event_type == "TransformationEvent"]
    assert made[0].body["inputQuantityList"][0]["epcClass"] == \
        "https://hdl.handle.net/88.100.5/PARTS-7"
    assert all(e.read_point == "urn:millnet:asset:7" for e in events)
    batch = made[0].body["outputEPCList"][0].removeprefix("https://hdl.handle.net/")
    linked = store.events(EventFilter(tenant_id=tenant, identifier=batch))
    assert [e.biz_step for e in linked] == ["commissioning", "assembling", "packing"]
    assert store.count(bare) == 0
    registry.close()
