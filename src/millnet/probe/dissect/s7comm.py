"""S7comm over ISO-on-TCP (TPKT, RFC 1006, and COTP, ISO 8073), from the documented header
layout: no maintained Python library dissects S7comm bytes (python-snap7 is a client and a
server). Only the header and the first parameter byte (the function) are read; variables,
blocks and userdata functions are not decoded."""

from __future__ import annotations

import struct
from typing import Any, Final

from millnet.errors import ProtocolError
from millnet.probe.model import DetailValue, Pdu

COTP_CONNECT_REQUEST, COTP_CONNECT_CONFIRM, COTP_DATA = 0xE0, 0xD0, 0xF0
S7_PROTOCOL, S7PLUS_PROTOCOL = 0x32, 0x72
JOB, ACK, ACK_DATA, USERDATA = 1, 2, 3, 7
FUNCTIONS: Final = {
    0x04: ("read", "read var"), 0x05: ("write", "write var"),
    0x1A: ("download", "request download"), 0x1B: ("download", "download block"),
    0x1C: ("download", "download ended"), 0x1D: ("read", "start upload"),
    0x1E: ("read", "upload"), 0x1F: ("read", "end upload"),
    0x28: ("write", "PLC control"), 0x29: ("stop", "PLC stop"),
    0xF0: ("session", "setup communication"),
}


def frame_length(data: bytes) -> int | None:
    if len(data) < 4:
        return None
    if data[0] != 3 or data[1] != 0:
        raise ProtocolError(f"s7comm: TPKT version {data[0]} (expected 3)")
    length = int(struct.unpack_from(">H", data, 2)[0])
    if length < 7:
        raise ProtocolError(f"s7comm: TPKT length {length} under 7")
    return length


def decode(frame: bytes, from_client: bool, session: dict[str, Any]) -> list[Pdu]:
    cotp_length, cotp_type = frame[4], frame[5] & 0xF0
    if cotp_type in (COTP_CONNECT_REQUEST, COTP_CONNECT_CONFIRM):
        name = "COTP connect request" if cotp_type == COTP_CONNECT_REQUEST else "COTP confirm"
        return [Pdu("s7comm", "session", name, from_client)]
    if cotp_type != COTP_DATA:
        return [Pdu("s7comm", "other", f"COTP type 0x{cotp_type:02x}", from_client)]
    at = 5 + cotp_length
    if at >= len(frame):
        raise ProtocolError("s7comm: COTP header runs past the end of the TPKT")
    if frame[at] == S7PLUS_PROTOCOL:
        return [Pdu("s7comm", "other", "S7comm-plus (not decoded)", from_client)]
    if frame[at] != S7_PROTOCOL or len(frame) < at + 10:
        raise ProtocolError(f"s7comm: protocol id 0x{frame[at]:02x} (expected 0x32)")
    rosctr = frame[at + 1]
    header = 12 if rosctr in (ACK, ACK_DATA) else 10
    param_length = int(struct.unpack_from(">H", frame, at + 6)[0])
    detail: dict[str, DetailValue] = {"rosctr": rosctr}
    if rosctr == USERDATA:
        return [Pdu("s7comm", "other", "userdata", from_client, detail)]
    if param_length == 0 or len(frame) <= at + header:
        return [Pdu("s7comm", "response" if rosctr != JOB else "other", f"rosctr {rosctr}",
                    from_client, detail)]
    function = frame[at + header]
    detail["function"] = function
    action, name = FUNCTIONS.get(function, ("other", f"function 0x{function:02x}"))
    if rosctr != JOB:
        return [Pdu("s7comm", "response", f"{name} ack", from_client, detail)]
    return [Pdu("s7comm", action, name, from_client, detail)]
