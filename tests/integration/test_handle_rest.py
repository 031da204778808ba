"""The Handle.Net-compatible HTTP JSON API, driven by pyhandle (PyPI) unchanged, plus the
status and responseCode mapping for what pyhandle does not exercise, on SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import (
    HandleAlreadyExistsException,
    HandleAuthenticationError,
    HandleNotFoundException,
)

from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.http.rest import create_handle_app
from millnet.protocols.handle import ServerRecord, SiteInfo, address_octets
from tests.integration.identifier_fixtures import identifier_url, shared_store
from tests.support.webserver import ThreadedServer

__all__ = ["identifier_url", "shared_store"]  # fixtures

SITE = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
SECRET_5 = "secret-of-88.100.5"
SECRET_6 = "secret-of-88.100.6"


@pytest.fixture(scope="module")
def server(shared_store: IdentifierStore) -> Iterator[ThreadedServer]:
    bootstrap_prefix(shared_store, "88.100.5", SECRET_5, SITE)
    bootstrap_prefix(shared_store, "88.100.6", SECRET_6, SITE)
    service = IdentifierService(shared_store, ["88.100.5", "88.100.6"])
    with ThreadedServer(create_handle_app(shared_store, service)) as running:
        yield running


def _writer(server: ThreadedServer, user: str = "300:88.100.5/ADMIN",
            password: str = SECRET_5) -> PyHandleClient:
    return PyHandleClient("rest").instantiate_with_username_and_password(
        server.url, user, password, HTTPS_verify=False)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{quote(user)}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_pyhandle_reads_the_prefix_record(server: ThreadedServer) -> None:
    reader = PyHandleClient("rest").instantiate_for_read_access(handle_server_url=server.url)
    record = reader.retrieve_handle_record_json("0.NA/88.100.5")
    assert record["responseCode"] == 1 and record["handle"] == "0.NA/88.100.5"
    by_type = {v["type"]: v for v in record["values"]}
    assert by_type["HS_ADMIN"]["data"]["format"] == "admin"
    assert by_type["HS_ADMIN"]["data"]["value"]["handle"] == "88.100.5/ADMIN"
    assert by_type["HS_ADMIN"]["data"]["value"]["index"] == 300
    assert by_type["HS_SITE"]["data"]["format"] == "site"
    assert reader.retrieve_handle_record("88.100.5/NEVER-MADE") is None


def test_pyhandle_registers_modifies_and_deletes(server: ThreadedServer) -> None:
    client = _writer(server)
    handle = "88.100.5/PUMP-000123"
    made = client.register_handle(handle, "https://factory.example/pumps/123",
                                  checksum="abc123", MODEL="P-200")
    assert made == handle
    assert client.get_value_from_handle(handle, "URL") == "https://factory.example/pumps/123"
    assert client.get_value_from_handle(handle, "MODEL") == "P-200"
    with pytest.raises(HandleAlreadyExistsException):
        client.register_handle(handle, "https://elsewhere.example/")
    assert client.get_value_from_handle(handle, "URL") == "https://factory.example/pumps/123"
    client.register_handle(handle, "https://factory.example/pumps/123-v2", overwrite=True)
    assert client.get_value_from_handle(handle, "URL").endswith("123-v2")
    assert client.get_value_from_handle(handle, "MODEL") is None  # replaced record

    client.modify_handle_value(handle, URL="https://factory.example/moved", STATUS="ok")
    assert client.get_value_from_handle(handle, "URL") == "https://factory.example/moved"
    assert client.get_value_from_handle(handle, "STATUS") == "ok"
    client.delete_handle_value(handle, "STATUS")
    assert client.get_value_from_handle(handle, "STATUS") is None
    client.delete_handle(handle)
    assert client.retrieve_handle_record(handle) is None
    with pytest.raises(HandleNotFoundException):
        client.delete_handle(handle)


def test_pyhandle_mints_a_suffix(server: ThreadedServer) -> None:
    client = _writer(server)
    made = client.generate_and_register_handle("88.100.5", "https://factory.example/batch/9")
    assert made.startswith("88.100.5/")
    assert client.get_value_from_handle(made, "URL") == "https://factory.example/batch/9"
    minted = httpx.put(f"{server.url}/api/handles/88.100.5/BATCH-?mintNewSuffix=true",
                       json={"values": [{"index": 1, "type": "URL", "data": {
                           "format": "string", "value": "https://factory.example/b"}}]},
                       headers=_basic("300:88.100.5/ADMIN", SECRET_5))
    assert minted.status_code == 201, minted.text
    assert minted.json()["handle"].startswith("88.100.5/BATCH-")


def test_wrong_password_and_foreign_admin_change_nothing(server: ThreadedServer) -> None:
    handle = "88.100.5/GUARDED-1"
    _writer(server).register_handle(handle, "https://factory.example/guarded")
    with pytest.raises(HandleAuthenticationError):
        _writer(server, password="not-the-secret").register_handle(
            "88.100.5/INTRUDER", "https://evil.example/")
    with pytest.raises(HandleAuthenticationError):
        _writer(server, password="not-the-secret").modify_handle_value(
            handle, URL="https://evil.example/")
    # The admin of 88.100.6 is authenticated, but has no rights on 88.100.5.
    foreign = _basic("300:88.100.6/ADMIN", SECRET_6)
    body = {"values": [{"index": 1, "type": "URL",
                        "data": {"format": "string", "value": "https://evil.example/"}}]}
    for request in (
        httpx.put(f"{server.url}/api/handles/88.100.5/INTRUDER", json=body, headers=foreign),
        httpx.put(f"{server.url}/api/handles/{handle}?index=1", json=body, headers=foreign),
        httpx.delete(f"{server.url}/api/handles/{handle}", headers=foreign),
    ):
        assert request.status_code == 403, request.text
        assert request.json()["responseCode"] == 400
    unauthenticated = httpx.delete(f"{server.url}/api/handles/{handle}")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["responseCode"] == 402
    reader = PyHandleClient("rest").instantiate_for_read_access(handle_server_url=server.url)
    assert reader.get_value_from_handle(handle, "URL") == "https://factory.example/guarded"
    assert reader.retrieve_handle_record("88.100.5/INTRUDER") is None


def test_status_and_response_codes(server: ThreadedServer) -> None:
    admin = _basic("300:88.100.5/ADMIN", SECRET_5)
    missing = httpx.get(f"{server.url}/api/handles/88.100.5/NOPE")
    assert (missing.status_code, missing.json()["responseCode"]) == (404, 100)
    invalid = httpx.get(f"{server.url}/api/handles/88.100.5/bad%01name")
    assert (invalid.status_code, invalid.json()["responseCode"]) == (400, 102)
    body = {"values": [{"index": 1, "type": "URL",
                        "data": {"format": "string", "value": "https://x.example/"}}]}
    url = f"{server.url}/api/handles/88.100.5/ONCE"
    first = httpx.put(f"{url}?overwrite=false", json=body, headers=admin)
    assert (first.status_code, first.json()["responseCode"]) == (201, 1)
    again = httpx.put(f"{url}?overwrite=false", json=body, headers=admin)
    assert (again.status_code, again.json()["responseCode"]) == (409, 101)
    bad_json = httpx.put(url, content=b"{not json", headers={
        **admin, "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "body" in bad_json.json()["message"]
    bad_value = httpx.put(url, json={"values": [{"index": "one", "type": "URL",
                                                 "data": "https://x.example/"}]},
                          headers=admin)
    assert bad_value.status_code == 400
    assert "values[0].index" in bad_value.json()["message"]
    filtered = httpx.get(f"{url}?type=EMAIL")
    assert filtered.status_code == 200 and filtered.json()["values"] == []
    by_index = httpx.get(f"{url}?index=1").json()
    assert [v["index"] for v in by_index["values"]] == [1]
    unknown = httpx.post(url, json=body, headers=admin)
    assert unknown.status_code == 405 and unknown.json()["responseCode"] == 4


def test_listing_pages_through_a_prefix(server: ThreadedServer) -> None:
    admin6 = _basic("300:88.100.6/ADMIN", SECRET_6)
    body = {"values": [{"index": 1, "type": "URL",
                        "data": {"format": "string", "value": "https://x.example/"}}]}
    for n in range(5):
        made = httpx.put(f"{server.url}/api/handles/88.100.6/LIST-{n}", json=body,
                         headers=admin6)
        assert made.status_code in (200, 201), made.text
    listed = httpx.get(f"{server.url}/api/handles?prefix=88.100.6", headers=admin6).json()
    assert listed["responseCode"] == 1
    assert {f"88.100.6/LIST-{n}" for n in range(5)} <= set(listed["handles"])
    page = httpx.get(f"{server.url}/api/handles?prefix=88.100.6&page=0&pageSize=2",
                     headers=admin6).json()
    assert len(page["handles"]) == 2 and int(page["totalCount"]) >= 5
    denied = httpx.get(f"{server.url}/api/handles?prefix=88.100.6",
                       headers=_basic("300:88.100.5/ADMIN", SECRET_5))
    assert denied.status_code == 403


@pytest.mark.parametrize("index", ["²", "٣", "3" * 50])
def test_unicode_or_huge_digits_in_credentials_are_refused_not_500(
        server: ThreadedServer, index: str) -> None:
    """'²'.isdigit() is true and int('²') raises: these answered 500 (issue 9)."""
    url = f"{server.url}/api/handles/88.100.5/DIGITS"
    body = {"values": [{"index": 1, "type": "URL", "data": "https://x.example/"}]}
    r = httpx.put(url, json=body, headers=_basic(f"{index}:88.100.5/ADMIN", SECRET_5))
    assert r.status_code == 401, r.text
    assert httpx.get(f"{url}?index={index}").status_code < 500
