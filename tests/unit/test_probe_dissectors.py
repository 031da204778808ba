"""Each dissector on bytes made by the protocol's own library (or builder), and on hostile
bytes: anything but a frame or a ProtocolError is a bug."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.pdu.bit_message import WriteSingleCoilRequest
from pymodbus.pdu.diag_message import RestartCommunicationsOptionRequest
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteMultipleRegistersRequest,
)

from millnet.errors import ProtocolError
from millnet.probe.dissect import DISSECTORS, Dissector
from millnet.probe.model import Pdu
from tests.support import pcapgen as g


def one(name: str, frame: bytes, from_client: bool = True,
        session: dict[str, Any] | None = None) -> Pdu:
    dissector = DISSECTORS[name]
    assert dissector.frame_length(frame[:16]) == len(frame)
    pdus = dissector.decode(frame, from_client, {} if session is None else session)
    assert len(pdus) == 1
    return pdus[0]


def test_modbus_read_and_write_with_addresses() -> None:
    read = one("modbus", g.modbus(ReadHoldingRegistersRequest(address=100, count=8, dev_id=7)))
    assert (read.action, read.detail["unit"], read.detail["address"], read.detail["count"]) \
        == ("read", 7, 100, 8)
    write = one("modbus", g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1, 2, 3],
                                                                 dev_id=1)))
    assert (write.action, write.detail["function"], write.detail["count"]) == ("write", 16, 3)
    coil = one("modbus", g.modbus(WriteSingleCoilRequest(address=9, bits=[True])))
    assert coil.action == "write" and coil.detail["function"] == 5


def test_modbus_device_identification_reveals_the_product() -> None:
    response = ReadDeviceInformationResponse(
        read_code=1, information={0: b"Acme", 1: b"P9", 2: b"v1.2", 5: b"PLC-9000"})
    pdu = one("modbus", g.modbus(response), from_client=False)
    assert pdu.action == "identify"
    assert (pdu.detail["vendor"], pdu.detail["model"], pdu.detail["firmware"]) \
        == ("Acme", "PLC-9000", "v1.2")


def test_modbus_diagnostics_and_exceptions() -> None:
    diag = one("modbus", g.modbus(RestartCommunicationsOptionRequest()))
    assert diag.action == "diagnostic" and diag.detail["sub_function"] == 1
    exception = one("modbus", bytes.fromhex("000100000003018302"), from_client=False)
    assert exception.action == "exception" and exception.detail["exception_code"] == 2


def test_modbus_bad_headers_and_functions_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="protocol id"):
        DISSECTORS["modbus"].frame_length(bytes.fromhex("00010007000601030000"))
    with pytest.raises(ProtocolError, match="MBAP length"):
        DISSECTORS["modbus"].frame_length(bytes.fromhex("0001000003e801"))
    with pytest.raises(ProtocolError, match="function code 99"):
        one("modbus", bytes.fromhex("0001000000030163ff"))


def test_opcua_hello_open_write_read() -> None:
    session: dict[str, Any] = {}
    hello = one("opcua", g.opcua_hello("opc.tcp://plc:4840/x"), session=session)
    assert hello.detail["endpoint_url"] == "opc.tcp://plc:4840/x"
    opened = one("opcua", g.opcua_open(), session=session)
    assert opened.detail["security_policy"] == "None"
    write = one("opcua", g.opcua_write(), session=session)
    assert (write.action, write.name) == ("write", "WriteRequest")
    read = one("opcua", g.opcua_read(), session=session)
    assert (read.action, read.name) == ("read", "ReadRequest")


def test_opcua_endpoints_response_names_the_application() -> None:
    pdu = one("opcua", g.opcua_endpoints("urn:acme.example:plc", "Acme PLC 9"),
              from_client=False)
    assert pdu.action == "identify"
    assert (pdu.detail["vendor"], pdu.detail["model"]) == ("acme.example", "Acme PLC 9")


def test_opcua_secured_channel_hides_services() -> None:
    pdu = one("opcua", g.opcua_write(), session={"opcua_secured": True})
    assert pdu.action == "other" and "secured" in pdu.name


def test_opcua_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an OPC UA chunk"):
        DISSECTORS["opcua"].frame_length(b"GET / HTTP/1.1\r\n")
    frame = bytearray(g.opcua_write())
    frame[24:28] = b"\x01\x00\xff\xff"  # a type id that is no service
    with pytest.raises(ProtocolError):
        one("opcua", bytes(frame))


def test_mqtt_connect_keeps_username_never_password() -> None:
    pdu = one("mqtt", g.mqtt_connect("edge-7", "operator", "s3cret"))
    assert pdu.detail["client_id"] == "edge-7" and pdu.detail["username"] == "operator"
    assert pdu.detail["password_present"] is True
    assert "s3cret" not in repr(pdu)
    v5 = one("mqtt", g.mqtt_connect("edge-8", level=5))
    assert v5.detail["protocol_level"] == 5 and v5.detail["username_present"] is False


def test_mqtt_publish_and_sparkplug_commands() -> None:
    plain = one("mqtt", g.mqtt_publish("plant/line1/temp", qos=1, retain=True))
    assert plain.action == "publish"
    assert (plain.detail["topic"], plain.detail["qos"], plain.detail["retain"]) \
        == ("plant/line1/temp", 1, True)
    birth = one("mqtt", g.mqtt_publish("spBv1.0/plant/NBIRTH/edge1"))
    assert birth.action == "publish" and birth.detail["edge_node"] == "edge1"
    command = one("mqtt", g.mqtt_publish("spBv1.0/plant/DCMD/edge1/pump3"))
    assert command.action == "write" and command.detail["device"] == "pump3"
    subscribe = one("mqtt", g.mqtt_subscribe("spBv1.0/#"))
    assert subscribe.action == "subscribe" and subscribe.detail["topics"] == "spBv1.0/#"


def test_mqtt_bad_packets() -> None:
    with pytest.raises(ProtocolError, match="reserved"):
        DISSECTORS["mqtt"].frame_length(b"\x00\x00")
    with pytest.raises(ProtocolError, match="longer than 4"):
        DISSECTORS["mqtt"].frame_length(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(ProtocolError, match="QoS 3"):
        one("mqtt", b"\x36\x03\x00\x01a")


def test_s7comm_stop_and_download() -> None:
    assert one("s7comm", g.s7_connect()).action == "session"
    stop = one("s7comm", g.s7_job(0x29))
    assert (stop.action, stop.detail["function"]) == ("stop", 0x29)
    assert one("s7comm", g.s7_job(0x1A)).action == "download"
    assert one("s7comm", g.s7_job(0x04)).action == "read"


def test_dnp3_functions() -> None:
    operate = one("dnp3", g.dnp3_request(5))
    assert operate.action == "write" and operate.detail["source"] == 1
    assert one("dnp3", g.dnp3_request(13)).action == "diagnostic"
    assert one("dnp3", g.dnp3_request(18)).action == "stop"
    with pytest.raises(ProtocolError, match="start bytes"):
        DISSECTORS["dnp3"].frame_length(b"\x05\x65\x08")


def _survives(dissector: Dissector, data: bytes) -> None:
    """Frames the way the probe does; only ProtocolError may come out."""
    try:
        length = dissector.frame_length(data[:16])
        if length is not None and length <= len(data):
            dissector.decode(data[:length], True, {})
            dissector.decode(data[:length], False, {"mqtt_level": 5})
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(DISSECTORS)), data=st.binary(min_size=0, max_size=300))
def test_random_bytes_only_protocol_errors(name: str, data: bytes) -> None:
    _survives(DISSECTORS[name], data)


VALID = {
    "modbus": [g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1, 2])),
               g.modbus(ReadDeviceInformationResponse(read_code=1, information={0: b"A"}))],
    "opcua": [g.opcua_hello(), g.opcua_open(), g.opcua_write(), g.opcua_endpoints()],
    "mqtt": [g.mqtt_connect("c", "u", "p"), g.mqtt_publish("spBv1.0/a/NCMD/b"),
             g.mqtt_subscribe("x")],
    "s7comm": [g.s7_job(0x29), g.s7_connect()],
    "dnp3": [g.dnp3_request(5)],
}


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), pick=st.integers(0, 3),
       flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 4000))
def test_mutated_valid_frames_only_protocol_errors(name: str, pick: int,
                                                   flips: list[tuple[int, int]],
                                                   cut: int) -> None:
    frames = VALID[name]
    frame = bytearray(frames[pick % len(frames)])
    for at, value in flips:
        frame[at % len(frame)] = value
    data = bytes(frame[:max(1, cut % (len(frame) + 1))]) if cut % 3 == 0 else bytes(frame)
    _survives(DISSECTORS[name], data)
