"""The probe capturing ``lo`` while a real asyncua client talks to a real asyncua server on a
port the probe does not know: the stream is recognised by its Hello, the services (Read,
Write, GetEndpoints) are decoded, and the server's application names it in the inventory."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.server.server import Server

from millnet.errors import PermissionDenied
from millnet.model.security import EventKind, SecurityEvent
from millnet.probe import Probe, live_capture
from millnet.probe.capture import open_raw_socket


def _need_raw_socket() -> None:
    try:
        sock, _ = open_raw_socket("lo")
    except PermissionDenied as exc:
        pytest.skip(f"live capture needs CAP_NET_RAW, which this process lacks: {exc}")
    sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _exchange(port: int) -> None:
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{port}/probe/"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.set_application_uri("urn:acme.example:plc1")
    server.product_uri = "urn:acme.example:plc"
    server.name = "Acme PLC 9"
    index = await server.register_namespace("urn:probe")
    variable = await server.nodes.objects.add_variable(index, "Setpoint", 1.0)
    await variable.set_writable()
    async with server, Client(url) as client:
        node = client.get_node(variable.nodeid)
        assert await node.read_value() == 1.0
        await node.write_value(2.0)


async def _observe(probe: Probe, port: int) -> None:
    async def capture() -> None:
        async for ts, frame in live_capture("lo"):
            probe.feed(ts, frame)

    task = asyncio.create_task(capture())
    try:
        await asyncio.sleep(0.2)
        await _exchange(port)
        await asyncio.sleep(0.3)  # the last packets reach the socket
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_live_capture_of_a_real_opcua_session() -> None:
    _need_raw_socket()
    events: list[SecurityEvent] = []
    port = _free_port()
    probe = Probe(events.append, learn_seconds=0)  # no port given: found by its Hello
    asyncio.run(_observe(probe, port))
    assert probe.stats.pdus["opcua"] >= 10
    assert probe.stats.decode_errors["opcua"] == 0
    (host,) = [h for h in probe.inventory() if h.address == "127.0.0.1"]
    assert f"tcp/{port}" in host.services
    assert {"opcua_server", "opcua_client"} <= set(host.roles)
    assert (host.vendor, host.model) == ("acme.example", "Acme PLC 9")
    writes = [e for e in events if e.kind == EventKind.FIELD_WRITE_UNUSUAL]
    assert len(writes) == 1 and writes[0].detail["service"] == "WriteRequest"
