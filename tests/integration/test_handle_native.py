"""Resolution over the native protocol from a millnet identifier store, UDP and TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from millnet.identifiers.core.delegation import site_value
from millnet.identifiers.core.service import IdentifierService
from millnet.identifiers.core.store import IdentifierStore
from millnet.identifiers.hierarchy.client import Server, request, request_tcp, resolution_request
from millnet.identifiers.native.handler import NativeHandler
from millnet.identifiers.wire.transport import NativeServer
from millnet.protocols.handle import (
    Envelope,
    GetSiteInfoRequest,
    GetSiteInfoResponse,
    HandleValue,
    Message,
    Permission,
    ResolutionResponse,
    ResponseCode,
    ServerRecord,
    ServiceReferral,
    SiteInfo,
    address_octets,
)

URL = HandleValue(1, "URL", b"https://plant.example/pumps/1")
SECRET = HandleValue(2, "EMAIL", b"ops@plant.example",
                     permissions=int(Permission.ADMIN_READ | Permission.ADMIN_WRITE))
MODEL = HandleValue(3, "MODEL", b"P-200")


def test_resolution_and_site_info(tmp_path: Path) -> None:
    store = IdentifierStore.open(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    store.create_handle("88.100.5/PUMP-1", [URL, SECRET, MODEL])
    store.create_handle("88.ACME/PUMP-1", [URL])
    site = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
    elsewhere = SiteInfo(servers=(ServerRecord(1, address_octets("10.0.0.6")),))
    store.create_handle("0.NA/88.100.6", [site_value(elsewhere)])  # delegated to another node
    service = IdentifierService(store, ["88.100.5", "88.ACME"])

    async def scenario() -> None:
        async with NativeServer(NativeHandler(service, site), udp_port=0, tcp_port=0) as server:
            where = Server("127.0.0.1", server.udp_port, server.tcp_port)
            answer = await request(resolution_request("88.100.5/PUMP-1"), where)
            assert isinstance(answer.body, ResolutionResponse)
            assert answer.body.values == (URL, MODEL)  # admin-read only value withheld

            by_type = await request(resolution_request("88.100.5/PUMP-1", types=["MODEL"]),
                                    where)
            assert isinstance(by_type.body, ResolutionResponse)
            assert by_type.body.values == (MODEL,)

            # The prefix is case-insensitive, the suffix is not.
            folded = await request(resolution_request("88.acme/PUMP-1"), where)
            assert folded.response_code == ResponseCode.SUCCESS
            lower = await request(resolution_request("88.ACME/pump-1"), where)
            assert lower.response_code == ResponseCode.HANDLE_NOT_FOUND

            bad = await request(resolution_request("no-slash"), where)
            assert bad.response_code == ResponseCode.INVALID_HANDLE

            referral = await request(resolution_request("88.100.6/VALVE-9"), where)
            assert referral.response_code == ResponseCode.SERVICE_REFERRAL
            assert isinstance(referral.body, ServiceReferral)
            assert referral.body.values == (site_value(elsewhere),)
            nobody = await request(resolution_request("99.1/X"), where)
            assert nobody.response_code == ResponseCode.SERVER_NOT_RESP

            info = await request_tcp(Message(GetSiteInfoRequest("/"), envelope=Envelope(
                request_id=7)), where)
            assert isinstance(info.body, GetSiteInfoResponse)
            assert info.body.site == site

    try:
        asyncio.run(scenario())
    finally:
        store.close()
