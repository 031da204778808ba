"""Registration for industry: templates validated at registration (built-in, local, fetched
from the secondary node over the native protocol), and batch registration over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.core.errors import InvalidValue
from millnet.identifiers.core.service import check_layouts
from millnet.identifiers.hierarchy.client import Server
from millnet.identifiers.hierarchy.templates import (
    DATA_TYPE,
    SCHEMA_TYPE,
    TEMPLATE_TYPE,
    TemplateCheck,
    publish_builtin,
    remote_fetcher,
    template_handle,
)
from millnet.identifiers.http.rest import create_handle_app
from millnet.identifiers.http.rest_batch import batch_routes
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.auth import AuthThrottle
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    HandleValue,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
)
from tests.support.webserver import ThreadedServer

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
ADMIN = ValueReference("88.100.5/ADMIN", 300)
PUMP = {"model": "P-200", "manufacturer": "Acme Pumps", "serialNumber": "SN000123",
        "productionDate": "2026-11-02", "specs": {"ratedPowerKw": 7.5}}


def _values(template: str, data: object) -> list[HandleValue]:
    return [HandleValue(1, "URL", b"https://plant.example/p/1"),
            HandleValue(2, TEMPLATE_TYPE, template.encode()),
            HandleValue(3, DATA_TYPE, json.dumps(data).encode())]


def _service(tmp_path: Path, name: str, prefix: str, check: TemplateCheck | None = None,
             ) -> IdentifierService:
    store = IdentifierStore.open(f"sqlite:///{tmp_path / name}.sqlite")
    bootstrap_prefix(store, prefix, f"secret-of-{prefix}", SITE)
    checks = (check_layouts, check or TemplateCheck(store))
    return IdentifierService(store, [prefix], value_checks=checks)


def test_built_in_templates_validate_with_field_paths(tmp_path: Path) -> None:
    service = _service(tmp_path, "e", "88.100.5")
    service.create_handle(ADMIN, "88.100.5/PUMP-1", _values("product", PUMP))
    bad = {**PUMP, "specs": {"ratedPowerKw": -5}}
    with pytest.raises(InvalidValue) as caught:
        service.create_handle(ADMIN, "88.100.5/PUMP-2", _values("product", bad))
    assert caught.value.field == "values[2].data"
    assert "/specs/ratedPowerKw" in str(caught.value) and "minimum" in str(caught.value)
    missing = {k: v for k, v in PUMP.items() if k != "serialNumber"}
    with pytest.raises(InvalidValue, match="serialNumber"):
        service.create_handle(ADMIN, "88.100.5/PUMP-3", _values("product", missing))
    with pytest.raises(InvalidValue, match="productionDate"):
        service.create_handle(ADMIN, "88.100.5/PUMP-4",
                              _values("product", {**PUMP, "productionDate": "yesterday"}))
    with pytest.raises(InvalidValue, match="unknown template"):
        service.create_handle(ADMIN, "88.100.5/PUMP-5", _values("gearbox", PUMP))
    with pytest.raises(InvalidValue, match="not JSON"):
        service.create_handle(ADMIN, "88.100.5/PUMP-6", [
            HandleValue(1, TEMPLATE_TYPE, b"product"), HandleValue(2, DATA_TYPE, b"{oops")])
    with pytest.raises(InvalidValue, match="needs an MN_DATA"):
        service.create_handle(ADMIN, "88.100.5/PUMP-7", [HandleValue(1, TEMPLATE_TYPE,
                                                                     b"product")])
    for n in range(2, 8):
        assert not service.store.exists(f"88.100.5/PUMP-{n}")
    # Changing the data later is validated too.
    with pytest.raises(InvalidValue):
        service.modify_values(ADMIN, "88.100.5/PUMP-1", [
            HandleValue(1, "URL", b"https://x/"), HandleValue(2, TEMPLATE_TYPE, b"product"),
            HandleValue(3, DATA_TYPE, json.dumps(bad).encode())])


def test_the_enterprise_fetches_the_template_from_its_secondary(tmp_path: Path) -> None:
    secondary = _service(tmp_path, "s", "88.100")
    published = publish_builtin(secondary.store, "88.100", ValueReference("88.100/ADMIN", 300))
    assert template_handle("88.100", "batch") in published
    # The industry narrows its own product template: a rated power is required.
    stricter = json.loads(secondary.store.get("88.100/TEMPLATE.product",
                                              types=(SCHEMA_TYPE,))[0].data)
    stricter["properties"]["specs"]["required"] = ["ratedPowerKw"]
    secondary.store.modify_values("88.100/TEMPLATE.product", [
        HandleValue(1, SCHEMA_TYPE, json.dumps(stricter).encode())])

    async def scenario() -> None:
        async with NativeServer(NativeHandler(secondary, SITE), udp_port=0,
                                tcp_port=0) as server:
            fetch = remote_fetcher(Server("127.0.0.1", server.udp_port, server.tcp_port))
            store = IdentifierStore.open(f"sqlite:///{tmp_path / 'e2'}.sqlite")
            bootstrap_prefix(store, "88.100.5", "secret", SITE)
            enterprise = IdentifierService(store, ["88.100.5"],
                                           value_checks=(check_layouts,
                                                         TemplateCheck(store, fetch)))
            ref = "88.100/TEMPLATE.product"
            await asyncio.to_thread(enterprise.create_handle, ADMIN, "88.100.5/P-1",
                                    _values(ref, PUMP))
            with pytest.raises(InvalidValue, match="ratedPowerKw"):
                await asyncio.to_thread(enterprise.create_handle, ADMIN, "88.100.5/P-2",
                                        _values(ref, {**PUMP, "specs": {}}))
            with pytest.raises(InvalidValue, match="not found"):
                await asyncio.to_thread(enterprise.create_handle, ADMIN, "88.100.5/P-3",
                                        _values("88.100/TEMPLATE.nothing", PUMP))

    asyncio.run(scenario())


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{quote(user)}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_batch_registration_over_http(tmp_path: Path) -> None:
    service = _service(tmp_path, "b", "88.100.5")
    bootstrap_prefix(service.store, "88.100.6", "secret-of-88.100.6", SITE)
    app = create_handle_app(service.store, service, routes=batch_routes(service))
    admin = _basic("300:88.100.5/ADMIN", "secret-of-88.100.5")
    with ThreadedServer(app) as server:
        url = f"{server.url}/api/batch/handles"
        items = [{"handle": f"88.100.5/LOT-{i:05d}", "template": "batch",
                  "data": {"batchNo": f"L{i}", "product": "P-200", "quantity": 10 + i,
                           "producedFrom": "2026-11-23T08:00:00Z"}} for i in range(2000)]
        made = httpx.post(url, json={"items": items}, headers=admin, timeout=60)
        assert made.status_code == 201, made.text
        assert made.json()["handles"][7] == "88.100.5/LOT-00007"
        got = httpx.get(f"{server.url}/api/handles/88.100.5/LOT-00007").json()
        data = next(v for v in got["values"] if v["type"] == DATA_TYPE)
        assert json.loads(data["data"]["value"])["quantity"] == 17
        # One bad item: nothing of the batch is stored, the error names the item and field.
        bad = [{"handle": f"88.100.5/NEW-{i}", "template": "batch",
                "data": {"batchNo": "x", "product": "P", "quantity": 1,
                         "producedFrom": "2026-11-23T08:00:00Z"}} for i in range(20)]
        bad[13]["data"] = {**bad[13]["data"], "quantity": 0}  # type: ignore[dict-item]
        refused = httpx.post(url, json={"items": bad}, headers=admin)
        assert refused.status_code == 400
        assert refused.json()["responseCode"] == 202
        assert "items[13].values[1].data" in refused.json()["message"]
        assert "/quantity" in refused.json()["message"]
        assert httpx.get(f"{server.url}/api/handles/88.100.5/NEW-0").status_code == 404
        exists = httpx.post(url, json={"items": [{"handle": "88.100.5/LOT-00001", "values": [
            {"index": 1, "type": "URL", "data": "https://x/"}]}]}, headers=admin)
        assert exists.status_code == 409 and exists.json()["responseCode"] == 101
        too_many = httpx.post(url, json={"items": [{"handle": "x"}] * 10_001}, headers=admin)
        assert too_many.status_code == 413 and "10000" in too_many.json()["message"]
        foreign = httpx.post(url, json={"items": [{"handle": "88.100.5/F-1", "values": [
            {"index": 1, "type": "URL", "data": "https://x/"}]}]},
            headers=_basic("300:88.100.6/ADMIN", "secret-of-88.100.6"))
        assert foreign.status_code == 403
        nobody = httpx.post(url, json={"items": []})
        assert nobody.status_code == 401
        malformed = httpx.post(url, json={"items": [{"handle": "88.100.5/M-1", "values": [
            {"index": 1, "type": "URL"}]}]}, headers=admin)
        assert malformed.status_code == 400
        assert "items[0].values[0].data" in malformed.json()["message"]


def test_http_basic_failures_are_throttled(tmp_path: Path) -> None:
    service = _service(tmp_path, "t", "88.100.5")
    app = create_handle_app(service.store, service, routes=batch_routes(service))
    app.state.throttle = AuthThrottle(limit=3, window=60)  # type: ignore[attr-defined]
    with ThreadedServer(app) as server:
        url = f"{server.url}/api/batch/handles"
        for _ in range(3):
            wrong = httpx.post(url, json={"items": []},
                               headers=_basic("300:88.100.5/ADMIN", "guess"))
            assert wrong.status_code == 401
        right = httpx.post(url, json={"items": []},
                           headers=_basic("300:88.100.5/ADMIN", "secret-of-88.100.5"))
        assert right.status_code == 401 and "too many failed" in right.json()["message"]


def test_a_change_of_values_is_checked_as_part_of_the_record(tmp_path: Path) -> None:
    """Found by review: only the changed values were checked, so MN_DATA alone could be
    replaced by anything while the template stayed, and mn_data escaped the check."""
    service = _service(tmp_path, "e", "88.100.5")
    service.create_handle(ADMIN, "88.100.5/P1", _values("product", PUMP))
    bad = {**PUMP, "specs": {"ratedPowerKw": -5}}
    with pytest.raises(InvalidValue) as caught:  # MN_DATA alone, as pyhandle sends it
        service.modify_values(ADMIN, "88.100.5/P1",
                              [HandleValue(3, DATA_TYPE, json.dumps(bad).encode())])
    assert caught.value.field == "values[0].data" and "minimum" in str(caught.value)
    with pytest.raises(InvalidValue):  # a second data value must follow the template too
        service.add_values(ADMIN, "88.100.5/P1", [HandleValue(9, DATA_TYPE, b'{"junk":1}')])
    with pytest.raises(InvalidValue, match="needs an MN_DATA"):  # template left, data gone
        service.remove_values(ADMIN, "88.100.5/P1", [3])
    with pytest.raises(InvalidValue) as stored:  # a new template the stored data misses
        service.modify_values(ADMIN, "88.100.5/P1", [HandleValue(2, TEMPLATE_TYPE, b"batch")])
    assert stored.value.field == "stored[3].data"
    with pytest.raises(InvalidValue):  # type names are compared ignoring ASCII case
        service.create_handle(ADMIN, "88.100.5/P2", [HandleValue(1, "mn_template", b"product"),
                                                      HandleValue(2, "mn_data", b"not json")])
    service.remove_values(ADMIN, "88.100.5/P1", [2])  # dropping the template is allowed
    assert json.loads(service.store.get("88.100.5/P1", indexes=[3])[0].data) == PUMP


def test_only_templates_of_the_node_and_its_parents_apply(tmp_path: Path) -> None:
    """Found by review: any admin could name their own schema, with a regular expression that
    backtracks for minutes (^(a|aa)+$), and stall the node."""
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'e.sqlite'}")
    bootstrap_prefix(store, "88.100.5", "secret-of-88.100.5", SITE)
    check = TemplateCheck(store, trusted=["88.100.5", "88.100", "88"])
    service = IdentifierService(store, ["88.100.5"], value_checks=(check_layouts, check))
    slow = json.dumps({"type": "object",
                       "properties": {"x": {"type": "string", "pattern": "^(a|aa)+$"}}})
    store.create_handle("88.200/TEMPLATE.evil", [HandleValue(1, SCHEMA_TYPE, slow.encode())])
    store.create_handle("88.100.5/MY-SCHEMA", [HandleValue(1, SCHEMA_TYPE, slow.encode())])
    payload = {"x": "a" * 40 + "!"}
    for ref in ("88.200/TEMPLATE.evil", "88.100.5/MY-SCHEMA"):
        with pytest.raises(InvalidValue, match="not one this node applies"):
            service.create_handle(ADMIN, "88.100.5/X", _values(ref, payload))
    unresolvable = json.dumps({"$ref": "https://example.invalid/schema.json"})
    store.create_handle("88.100.5/TEMPLATE.broken",
                        [HandleValue(1, SCHEMA_TYPE, unresolvable.encode())])
    with pytest.raises(InvalidValue, match="cannot be applied"):  # was an HTTP 500
        service.create_handle(ADMIN, "88.100.5/Y", _values("88.100.5/TEMPLATE.broken", {}))
    deep = HandleValue(3, DATA_TYPE, b"[" * 20_000 + b"]" * 20_000)
    with pytest.raises(InvalidValue, match="nested too deeply"):
        service.create_handle(ADMIN, "88.100.5/Z", [HandleValue(2, TEMPLATE_TYPE, b"product"),
                                                     deep])
    store.close()


def test_malformed_requests_get_400_not_500(tmp_path: Path) -> None:
    """Found by review: a deeply nested body and a huge page number were HTTP 500s."""
    service = _service(tmp_path, "e", "88.100.5")
    app = create_handle_app(service.store, service)
    auth = ("300%3A88.100.5/ADMIN", "secret-of-88.100.5")

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as http:
            deep = await http.put("/api/handles/88.100.5/D", content=b"[" * 100_000,
                                  headers={"Content-Type": "application/json"}, auth=auth)
            assert deep.status_code == 400 and "nested too deeply" in deep.json()["message"]
            huge = await http.get("/api/handles", auth=auth, params={
                "prefix": "88.100.5", "page": "99999999999999999999", "pageSize": "10"})
            assert huge.status_code == 400 and "page" in huge.json()["message"]

    asyncio.run(scenario())


def test_batch_errors_name_the_item(tmp_path: Path) -> None:
    """Found by review: a name twice in a batch was refused without naming the item, and an
    HS_ADMIN index chosen as max + 1 could pass 2**32 - 1 (a struct error)."""
    from millnet.identifiers.core.errors import HandleExists

    service = _service(tmp_path, "e", "88.100.5")
    url = HandleValue(1, "URL", b"https://plant.example/x")
    items = [("88.100.5/A", [url]), ("88.100.5/B", [url]), ("88.100.5/a", [url]),
             ("88.100.5/B", [url])]
    with pytest.raises(HandleExists, match=r"items\[3\]\.handle: 88\.100\.5/B appears twice"):
        service.create_many(ADMIN, items)
    edge = [HandleValue(100, "URL", b"x"), HandleValue(0xFFFFFFFF, "EMAIL", b"y")]
    service.create_many(ADMIN, [("88.100.5/EDGE", edge)])
    admin = service.store.get("88.100.5/EDGE", types=("HS_ADMIN",))
    assert [v.index for v in admin] == [101]
