"""EPCIS capture, query and trace through the API (issue 15): a real registry and telemetry
store, two tenants; all-or-nothing capture with the paths of the errors, de-duplication by
event hash, tenant isolation, a trace through a bill of materials with production conditions,
and a trace across two nodes over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from millnet.api import create_app
from millnet.config import Settings
from millnet.ingest.metrics import IngestMetrics
from millnet.model import AssetKind, DataType, PointSpec, SampleBatch
from millnet.registry import Registry
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore
from millnet.tracing import Tracing, build_tracing, mount

CTX = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
T0 = "2026-03-02T08:00:00.000Z"


def doc(*events: dict[str, Any]) -> dict[str, Any]:
    return {"@context": CTX, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": T0, "epcisBody": {"eventList": list(events)}}


def made(inputs: list[str], output: str, time: str, read_point: str = "urn:x:line") \
        -> dict[str, Any]:
    return {"type": "TransformationEvent", "eventTime": time, "eventTimeZoneOffset": "+00:00",
            "inputEPCList": [f"https://hdl.handle.net/{i}" for i in inputs],
            "outputEPCList": [f"https://hdl.handle.net/{output}"], "bizStep": "assembling",
            "readPoint": {"id": read_point}}


def started(item: str, time: str, read_point: str) -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventTime": time, "eventTimeZoneOffset": "+00:00",
            "epcList": [f"hdl:{item}"], "action": "ADD", "bizStep": "commissioning",
            "readPoint": {"id": read_point}}


@dataclass
class Node:
    app: FastAPI
    client: TestClient
    registry: Registry
    tracing: Tracing
    tenant: int
    admin: str
    viewer: str
    other: str  # an operator of another tenant

    def post(self, body: Any, status: int = 201, token: str | None = None) -> Any:
        r = self.client.post("/api/v1/epcis/capture", json=body,
                             headers={"Authorization": f"Bearer {token or self.admin}"})
        assert r.status_code == status, r.text
        return r.json()

    def get(self, path: str, status: int = 200, token: str | None = None) -> Any:
        r = self.client.get(path, headers={"Authorization": f"Bearer {token or self.viewer}"})
        assert r.status_code == status, r.text
        return r.json()


def make_node(tmp: Path, name: str, prefix: str, **trace: Any) -> Iterator[Node]:
    registry = Registry.open(f"sqlite:///{tmp / name}.sqlite")
    store = DuckDBTelemetryStore(tmp / f"{name}.duckdb", tmp / f"{name}-archive")
    tenant = registry.ensure_tenant(f"{name}-co").id
    registry.set_identifier_prefixes(tenant, [prefix])
    other = registry.ensure_tenant(f"{name}-other").id
    settings = Settings.model_validate({"node": {"name": name}, "trace": trace})
    tracing = build_tracing(settings, registry, store, tenant)
    app = create_app(registry, store, IngestMetrics(), node_name=name, role="enterprise")
    mount(app, tracing, "/api/v1")
    with TestClient(app) as client:
        yield Node(app, client, registry, tracing, tenant,
                   registry.create_token(tenant, "operator", "op")[0],
                   registry.create_token(tenant, "viewer", "v")[0],
                   registry.create_token(other, "operator", "x")[0])
    store.close()
    registry.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from make_node(tmp_path, "ent-a", "88.100.5")


def test_capture_stores_once_and_reports_duplicates(node: Node) -> None:
    events = [made(["88.100.5/P-1", "88.100.5/P-2"], "88.100.5/B-1", T0),
              started("88.100.5/B-1", "2026-03-02T07:00:00Z", "urn:x:line")]
    first = node.post(doc(*events))
    assert first["stored"] == 2 and first["duplicates"] == 0
    again = node.post(doc(*events, events[0]))
    assert again == {"stored": 0, "duplicates": 3, "event_hashes": [
        *first["event_hashes"], first["event_hashes"][0]]}
    single = node.post({"@context": CTX[0], **events[0]})  # a single event: same hash
    assert single["duplicates"] == 1 and single["event_hashes"][0] == first["event_hashes"][0]


def test_an_invalid_document_is_refused_whole_with_every_path(node: Node) -> None:
    bad = doc(made(["88.100.5/P-1"], "88.100.5/B-1", T0),
              {**made(["88.100.5/P-3"], "88.100.5/B-2", T0), "bizStep": 5},
              {**made(["88.100.5/P-4"], "88.100.5/B-3", T0), "eventTime": "yesterday"})
    answer = node.post(bad, 422)
    paths = [e["path"] for e in answer["errors"]]
    assert "epcisBody.eventList[1].bizStep" in paths
    assert "epcisBody.eventList[2].eventTime" in paths
    assert node.get("/api/v1/epcis/events")["events"] == []  # not even the good event


def test_a_body_that_is_not_json_is_refused_nan_included(node: Node) -> None:
    """NaN and Infinity are read by Python's json but are not JSON: 400, nothing stored."""
    quantity = {"epcClass": "urn:epc:class:lgtin:4012345.012345.998877",
                "quantity": 1.5, "uom": "KGM"}
    good = {**started("88.100.5/B-9", T0, "urn:x:line"), "quantityList": [quantity]}
    text = json.dumps(doc(good)).replace("1.5", "NaN")
    for body in (text, text.replace("NaN", "-Infinity"), "{"):
        r = node.client.post("/api/v1/epcis/capture", content=body, headers={
            "Authorization": f"Bearer {node.admin}", "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_json", r.text
    assert node.get("/api/v1/epcis/events")["events"] == []
    assert node.post(doc(good))["stored"] == 1  # the same document with a number


def test_query_by_identifier_step_type_and_pages(node: Node) -> None:
    node.post(doc(*[made([f"88.100.5/P-{i}"], f"88.100.5/B-{i}", f"2026-03-02T08:00:0{i}Z")
                    for i in range(5)],
                  started("88.100.5/B-1", "2026-03-02T07:00:00Z", "urn:x:line")))
    by_epc = node.get("/api/v1/epcis/events?epc=https://hdl.handle.net/88.100.5/B-1")
    assert len(by_epc["events"]) == 2
    assert len(node.get("/api/v1/epcis/events?epc=hdl:88.100.5/P-3")["events"]) == 1
    steps = node.get("/api/v1/epcis/events?bizStep=commissioning")["events"]
    assert [e["type"] for e in steps] == ["ObjectEvent"]
    assert len(node.get("/api/v1/epcis/events?type=TransformationEvent")["events"]) == 5
    ranged = node.get("/api/v1/epcis/events?start=2026-03-02T08:00:02Z"
                      "&end=2026-03-02T08:00:04Z")["events"]
    assert len(ranged) == 2
    page = node.get("/api/v1/epcis/events?limit=4")
    rest = node.get(f"/api/v1/epcis/events?limit=4&after={page['next_after']}")
    assert len(page["events"]) == 4 and len(rest["events"]) == 2 and rest["next_after"] is None


def test_tenants_see_nothing_of_each_other(node: Node) -> None:
    node.post(doc(made(["88.100.5/P-1"], "88.100.5/B-1", T0)))
    assert node.get("/api/v1/epcis/events", token=node.other)["events"] == []
    trace = node.get("/api/v1/trace/88.100.5/B-1", token=node.other)
    assert trace["upstream"] == [] and "events" not in trace
    r = node.client.post(f"/api/v1/epcis/capture?tenant_id={node.tenant}",
                         json=doc(made(["88.100.5/P-9"], "88.100.5/B-9", T0)),
                         headers={"Authorization": f"Bearer {node.other}"})
    assert r.status_code == 404
    assert node.get("/api/v1/epcis/events?epc=88.100.5/B-9")["events"] == []
    r = node.client.post("/api/v1/epcis/capture", json=doc(),
                         headers={"Authorization": f"Bearer {node.viewer}"})
    assert r.status_code == 403  # viewers read only
    many = node.client.post("/api/v1/trace", json={"identifiers": ["88.100.5/B-1"]},
                            headers={"Authorization": f"Bearer {node.other}"}).json()
    assert many["traces"]["88.100.5/B-1"]["upstream"] == []
    assert "events" not in many["traces"]["88.100.5/B-1"]
    mine = node.client.post("/api/v1/trace", json={"identifiers": ["88.100.5/B-1"]},
                            headers={"Authorization": f"Bearer {node.viewer}"}).json()
    assert [t["identifier"] for t in mine["traces"]["88.100.5/B-1"]["upstream"]] == \
        ["88.100.5/P-1"]


def test_a_context_that_is_not_shipped_is_refused_not_fetched(node: Node) -> None:
    event = made(["88.100.5/P-1"], "88.100.5/B-1", T0)
    answer = node.post({**doc(event), "@context": [*CTX, "https://example.com/x.jsonld"]}, 422)
    assert answer["errors"][0]["path"] == "epcisBody.eventList[0]"
    assert node.get("/api/v1/epcis/events")["events"] == []


def _line_with_telemetry(node: Node) -> tuple[int, str]:
    reg = node.registry
    path = [(AssetKind.ENTERPRISE, "e"), (AssetKind.SITE, "s"), (AssetKind.AREA, "a"),
            (AssetKind.LINE, "l1")]
    line = reg.ensure_path(node.tenant, path)[-1]
    press = reg.ensure_path(node.tenant, [*path, (AssetKind.DEVICE, "press")])[-1]
    series = reg.upsert_points(node.tenant, press, [PointSpec("Temp", DataType.DOUBLE)])
    sid = series["Temp"]
    ts = [1_772_438_400_000_000_000 + i * 60_000_000_000 for i in range(-90, 10)]  # 06:30-
    values = [20.0 + (i % 7) for i in range(len(ts))]
    store = node.tracing.tracer._conditions._telemetry  # type: ignore[union-attr]
    store.write(SampleBatch(np.full(len(ts), sid, np.int32), np.array(ts, np.int64),
                            np.array(values, np.float64), np.zeros(len(ts), np.uint8)))
    return line, reg.get_asset(line).path


def test_trace_walks_the_bill_of_materials_with_conditions(node: Node) -> None:
    line, _ = _line_with_telemetry(node)
    rp = f"urn:millnet:asset:{line}"
    node.post(doc(
        started("88.100.5/PROD-1", "2026-03-02T07:30:00Z", rp),
        made(["88.100.5/SUB-1", "88.100.5/SUB-2"], "88.100.5/PROD-1", T0, rp),
        made(["88.100.5/PART-1"], "88.100.5/SUB-1", "2026-03-02T07:00:00Z"),
        made(["88.100.5/PART-2", "88.100.5/SUB-1"], "88.100.5/SUB-2", "2026-03-02T07:10:00Z"),
        made(["88.100.5/PROD-1"], "88.100.5/SUB-1", "2026-03-02T09:00:00Z"),  # a cycle
        {"type": "ObjectEvent", "eventTime": "2026-03-02T10:00:00Z",
         "eventTimeZoneOffset": "+00:00", "epcList": ["hdl:88.100.5/PROD-1"],
         "action": "OBSERVE", "bizStep": "shipping",
         "destinationList": [{"type": "owning_party", "destination": "urn:x:customer"}]},
    ))
    tree = node.get("/api/v1/trace/88.100.5/PROD-1")
    ups = {t["identifier"]: t for t in tree["upstream"]}
    assert set(ups) == {"88.100.5/SUB-1", "88.100.5/SUB-2"}
    below = {t["identifier"] for t in ups["88.100.5/SUB-1"]["upstream"]}
    assert "88.100.5/PART-1" in below
    assert all(t.get("status") == "seen" for t in ups["88.100.5/SUB-1"]["upstream"]
               if t["identifier"] == "88.100.5/PROD-1")
    cond = tree["conditions"]
    assert cond["read_point"] == rp and cond["machines"] == ["e/s/a/l1/press"]
    temp = cond["telemetry"][0]
    assert temp["point"] == "Temp" and temp["count"] == 31 and 20 <= temp["min"] <= temp["max"]
    assert [e["biz_step"] for e in tree["events"]][-1] == "shipping"
    down = node.get("/api/v1/trace/88.100.5/PART-2?direction=down")
    assert [t["identifier"] for t in down["downstream"]] == ["88.100.5/SUB-2"]
    assert "upstream" not in down


def _serve(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    return server, thread, port


def test_trace_crosses_to_the_supplier_node_and_marks_the_unreachable(tmp_path: Path) -> None:
    supplier_gen = make_node(tmp_path, "supplier", "88.200.1")
    supplier = next(supplier_gen)
    supplier.post(doc(made(["88.200.1/ORE-1"], "88.200.1/STEEL-7", T0),
                      made(["88.200.1/MINE-1"], "88.200.1/ORE-1", "2026-03-01T08:00:00Z")))
    server, thread, port = _serve(supplier.app)
    try:
        maker_gen = make_node(tmp_path, "maker", "88.100.5", timeout_s=2.0, peers=[
            {"prefix": "88.200.1", "url": f"http://127.0.0.1:{port}/api/v1/trace/",
             "token": supplier.viewer},
            {"prefix": "88.300.9", "url": "http://127.0.0.1:9/api/v1/trace/"}])
        maker = next(maker_gen)
        maker.post(doc(made(["88.200.1/STEEL-7", "88.300.9/BOLT-1"], "88.100.5/CAR-1", T0)))
        tree = maker.get("/api/v1/trace/88.100.5/CAR-1?direction=up")
        ups = {t["identifier"]: t for t in tree["upstream"]}
        steel = ups["88.200.1/STEEL-7"]
        assert steel["node"] == "supplier" and steel["remote"].endswith("/api/v1/trace/")
        ore = steel["upstream"][0]
        assert ore["identifier"] == "88.200.1/ORE-1"
        assert ore["upstream"][0]["identifier"] == "88.200.1/MINE-1"
        assert ups["88.300.9/BOLT-1"]["status"] == "unreachable"
        shallow = maker.get("/api/v1/trace/88.100.5/CAR-1?direction=up&depth=2")
        steel = {t["identifier"]: t for t in shallow["upstream"]}["88.200.1/STEEL-7"]
        assert steel["upstream"][0]["status"] == "depth_limit"
        list(maker_gen)
    finally:
        server.should_exit = True
        thread.join(5)
        list(supplier_gen)
