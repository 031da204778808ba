"""The probe capturing ``lo`` live (AF_PACKET) while a real pymodbus client talks to a real
pymodbus server: decoded PDUs, the server's identity in the inventory, a write event."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from pymodbus import ModbusDeviceIdentification
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from millnet.errors import InvalidInput, PermissionDenied
from millnet.model.security import EventKind, SecurityEvent
from millnet.probe import Probe, live_capture
from millnet.probe.capture import open_raw_socket

PDUS = 16  # 8 requests, 8 responses


def _need_raw_socket() -> None:
    try:
        sock, _ = open_raw_socket("lo")
    except PermissionDenied as exc:
        pytest.skip(f"live capture needs CAP_NET_RAW, which this process lacks: {exc}")
    sock.close()


async def _capture(probe: Probe, done: asyncio.Event, pdus: int) -> None:
    async for ts, frame in live_capture("lo"):
        probe.feed(ts, frame)
        if probe.stats.pdus["modbus"] >= pdus:
            done.set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _traffic(port: int) -> None:
    device = SimDevice(1, simdata=(
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=list(range(32)), datatype=DataType.REGISTERS)],
        [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)]))
    identity = ModbusDeviceIdentification(info_name={  # type: ignore[no-untyped-call]
        "VendorName": "Acme", "ProductCode": "P9", "MajorMinorRevision": "4.2.1",
        "ModelName": "PLC-9000"})
    server = ModbusTcpServer(device, identity=identity, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        try:
            for _ in range(5):
                assert not (await client.read_holding_registers(0, count=4)).isError()
            for read_code in (1, 2):  # basic, then regular objects (model name)
                assert not (await client.read_device_information(read_code=read_code)).isError()
            assert not (await client.write_registers(2, [7, 8])).isError()
        finally:
            client.close()
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def _observe(probe: Probe, port: int) -> None:
    done = asyncio.Event()
    capture = asyncio.create_task(_capture(probe, done, PDUS))
    try:
        await asyncio.sleep(0.2)  # the socket is bound before the traffic starts
        await _traffic(port)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 5.0)
    finally:
        capture.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await capture


def test_live_capture_of_a_real_modbus_exchange() -> None:
    _need_raw_socket()
    events: list[SecurityEvent] = []
    port = _free_port()  # a Modbus server on a port of its own, so others' loopback traffic
    probe = Probe(events.append, learn_seconds=0, ports={port: "modbus"})  # is not Modbus
    asyncio.run(_observe(probe, port))
    assert probe.stats.pdus["modbus"] == PDUS
    assert sum(probe.stats.decode_errors.values()) == 0
    (host,) = [h for h in probe.inventory() if h.address == "127.0.0.1"]
    assert f"tcp/{port}" in host.services
    assert {"modbus_server", "modbus_client"} <= set(host.roles)
    assert (host.vendor, host.model, host.firmware) == ("Acme", "PLC-9000", "4.2.1")
    writes = [e for e in events if e.kind == EventKind.FIELD_WRITE_UNUSUAL]
    assert len(writes) == 1 and writes[0].detail["function"] == 16


def test_a_missing_interface_is_named() -> None:
    _need_raw_socket()
    with pytest.raises(InvalidInput, match="no interface 'nosuch0'"):
        open_raw_socket("nosuch0")


def test_count_and_duration_end_a_live_capture() -> None:
    _need_raw_socket()

    async def scenario() -> tuple[int, int, float]:
        async def traffic() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for _ in range(50):
                    sender.sendto(b"x", ("127.0.0.1", 9))  # discard port: nobody answers
                    await asyncio.sleep(0.01)

        frames: list[bytes] = []
        sender = asyncio.create_task(traffic())
        async for _, frame in live_capture("lo", count=5):
            frames.append(frame)
        first = len(frames)
        await sender
        loop = asyncio.get_running_loop()
        started = loop.time()
        async for _, frame in live_capture("lo", duration=0.3):
            frames.append(frame)
        return first, len(frames) - first, loop.time() - started

    counted, _, seconds = asyncio.run(scenario())
    assert counted == 5
    assert 0.25 <= seconds < 2.0
