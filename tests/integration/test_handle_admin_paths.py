"""The authorization invariants of ``test_identifier_authorization`` through real requests: the
HTTP JSON API and batch registration under uvicorn, and the native protocol over TCP with
challenge-response, against one SQLite store. A principal with ADD_VALUE cannot make itself an
admin however it spells HS_ADMIN, and an HS_SECKEY sent without permissions is not public."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.core.delegation import admin_record_value
from millnet.identifiers.hierarchy.client import Server, admin_request, request, resolution_request
from millnet.identifiers.http.rest import create_handle_app
from millnet.identifiers.http.rest_batch import batch_routes
from millnet.identifiers.native.handler import AdminBody, NativeHandler
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    AddValueRequest,
    AdminPermission,
    CreateHandleRequest,
    DeleteHandleRequest,
    HandleValue,
    Message,
    ModifyValueRequest,
    Permission,
    RemoveValueRequest,
    ResolutionResponse,
    ResponseCode,
    ServerRecord,
    SiteInfo,
    ValueReference,
    address_octets,
)
from tests.support.webserver import ThreadedServer

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
OWNER_SECRET = "owner-secret"
OPERATOR_SECRET = "operator-secret"
OWNER = ValueReference("88.100.5/ADMIN", 300)
OPERATOR = ValueReference("88.100.5/OPERATOR", 300)
TARGET = "88.100.5/TARGET"
URL = HandleValue(1, "URL", b"https://plant.example/target")
#: an admin value that would give the operator every right on TARGET
GRAB = HandleValue(102, "hs_admin", admin_record_value(OPERATOR).data)
PUBLIC = Permission.PUBLIC_READ | Permission.PUBLIC_WRITE


def _setup(store: IdentifierStore) -> IdentifierService:
    """88.100.5 owned by OWNER; OPERATOR (its own key) holds ADD_VALUE and READ_VALUE on
    TARGET, the rights of the reported takeover."""
    bootstrap_prefix(store, "88.100.5", OWNER_SECRET, SITE)
    store.create_handle(OPERATOR.handle, [
        admin_record_value(OWNER),
        HandleValue(300, "HS_SECKEY", OPERATOR_SECRET.encode(),
                    permissions=Permission.ADMIN_READ | Permission.ADMIN_WRITE)])
    store.create_handle(TARGET, [URL, admin_record_value(OWNER), admin_record_value(
        OPERATOR, 101, AdminPermission.ADD_VALUE | AdminPermission.READ_VALUE)])
    return IdentifierService(store, ["88.100.5"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IdentifierStore]:
    with IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}") as opened:
        yield opened


# ----------------------------------------------------------------------------- HTTP

def _basic(who: ValueReference, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{quote(f'{who.index}:{who.handle}')}:{secret}".encode())
    return {"Authorization": f"Basic {token.decode()}"}


AS_OWNER = _basic(OWNER, OWNER_SECRET)
AS_OPERATOR = _basic(OPERATOR, OPERATOR_SECRET)


def _json_value(index: int, value_type: str, data: Any) -> dict[str, Any]:
    return {"index": index, "type": value_type, "data": data}


@pytest.fixture
def http(store: IdentifierStore) -> Iterator[httpx.Client]:
    service = _setup(store)
    app = create_handle_app(store, service, routes=batch_routes(service))
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


def test_http_add_value_cannot_grant_admin(http: httpx.Client,
                                           store: IdentifierStore) -> None:
    before = store.get(TARGET)
    url = f"/api/handles/{TARGET}"
    assert http.delete(url, headers=AS_OPERATOR).status_code == 403
    grab = {"index": 102, "data": {"format": "admin", "value": {
        "handle": OPERATOR.handle, "index": OPERATOR.index, "permissions": "*"}}}
    for spelling in ("HS_ADMIN", "hs_admin", "Hs_Admin"):
        answer = http.put(f"{url}?index=102&overwrite=false", headers=AS_OPERATOR,
                          json={"values": [{**grab, "type": spelling}]})
        assert answer.status_code == 403, answer.text
        assert "ADD_ADMIN" in answer.json()["message"]
    assert http.delete(f"{url}?index=100", headers=AS_OPERATOR).status_code == 403
    assert http.put(f"{url}?index=1", headers=AS_OPERATOR, json={"values": [
        _json_value(1, "URL", "https://evil.example/")]}).status_code == 403
    assert store.get(TARGET) == before
    # the owner may, and the value is stored as HS_ADMIN
    added = http.put(f"{url}?index=102&overwrite=false", headers=AS_OWNER,
                     json={"values": [{**grab, "type": "hs_admin"}]})
    assert added.status_code == 201, added.text
    assert store.get(TARGET, [102])[0].type == "HS_ADMIN"


def test_http_secret_keys_without_permissions_are_not_public(http: httpx.Client) -> None:
    key = _json_value(300, "HS_SECKEY", "the-secret")
    made = http.put("/api/handles/88.100.5/DEVICE-1", headers=AS_OWNER,
                    json={"values": [_json_value(1, "URL", "https://x.example/"), key]})
    assert made.status_code == 200, made.text
    batch = http.post("/api/batch/handles", headers=AS_OWNER, json={"items": [
        {"handle": "88.100.5/DEVICE-2", "values": [{**key, "type": "hs_seckey"}]}]})
    assert batch.status_code == 201, batch.text
    added = http.put("/api/handles/88.100.5/DEVICE-1?index=301", headers=AS_OWNER,
                     json={"values": [{**key, "index": 301, "permissions": "1111"}]})
    assert added.status_code == 201, added.text
    for handle in ("88.100.5/DEVICE-1", "88.100.5/DEVICE-2"):
        public = http.get(f"/api/handles/{handle}")
        assert public.status_code == 200, public.text
        assert "the-secret" not in public.text
        assert all(v["type"] != "HS_SECKEY" for v in public.json()["values"])
        admin = http.get(f"/api/handles/{handle}?publicOnly=false", headers=AS_OWNER)
        keys = [v for v in admin.json()["values"] if v["type"] == "HS_SECKEY"]
        assert keys and all(v["permissions"] == "1100" for v in keys), admin.text


# ----------------------------------------------------------------------------- native

def _native(store: IdentifierStore,
            scenario: Callable[[Server], Coroutine[Any, Any, None]]) -> None:
    handler = NativeHandler(_setup(store), SITE)

    async def main() -> None:
        async with NativeServer(handler, udp_port=0, tcp_port=0) as srv:
            await scenario(Server("127.0.0.1", srv.udp_port, srv.tcp_port))

    asyncio.run(main())


async def _as(who: ValueReference, secret: str, body: AdminBody, where: Server) -> Message:
    return await admin_request(body, where, key_handle=who.handle, key_index=who.index,
                               secret=secret)


def test_native_add_value_cannot_grant_admin(store: IdentifierStore) -> None:
    async def scenario(where: Server) -> None:
        before = store.get(TARGET)
        for body in (AddValueRequest(TARGET, (GRAB,)),
                     AddValueRequest(TARGET, (HandleValue(102, "HS_ADMIN", GRAB.data),)),
                     RemoveValueRequest(TARGET, (100,)),
                     ModifyValueRequest(TARGET, (HandleValue(100, "hs_admin", GRAB.data),)),
                     DeleteHandleRequest(TARGET)):
            denied = await _as(OPERATOR, OPERATOR_SECRET, body, where)
            assert denied.response_code == ResponseCode.NOT_AUTHORIZED, body
        assert store.get(TARGET) == before
        # a plain value is within ADD_VALUE
        note = HandleValue(5, "NOTE", b"checked")
        ok = await _as(OPERATOR, OPERATOR_SECRET, AddValueRequest(TARGET, (note,)), where)
        assert ok.response_code == ResponseCode.SUCCESS
        # HS_SECKEY with the permissions hdllib sends by default (public read): kept private
        made = await _as(OWNER, OWNER_SECRET, CreateHandleRequest("88.100.5/KEYED", (
            URL, HandleValue(300, "hs_seckey", b"native-secret"))), where)
        assert made.response_code == ResponseCode.SUCCESS
        answer = await request(resolution_request("88.100.5/KEYED"), where)
        assert isinstance(answer.body, ResolutionResponse)
        assert all(v.data != b"native-secret" for v in answer.body.values)

    _native(store, scenario)
    (key,) = store.get("88.100.5/KEYED", [300])
    assert key.type == "HS_SECKEY" and not key.permissions & PUBLIC
