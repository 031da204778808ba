"""DNP3 over TCP (IEEE 1815), from the documented link and application headers: the maintained
Python DNP3 packages are bindings of a master/outstation stack, not dissectors of bytes. CRCs
are not checked; only the first fragment's application function code is read."""

from __future__ import annotations

import struct
from typing import Any, Final

from millnet.errors import ProtocolError
from millnet.probe.model import DetailValue, Pdu

FUNCTIONS: Final = {
    0: ("other", "confirm"), 1: ("read", "read"), 2: ("write", "write"),
    3: ("write", "select"), 4: ("write", "operate"), 5: ("write", "direct operate"),
    6: ("write", "direct operate no ack"), 13: ("diagnostic", "cold restart"),
    14: ("diagnostic", "warm restart"), 18: ("stop", "stop application"),
    20: ("write", "enable unsolicited"), 21: ("write", "disable unsolicited"),
    129: ("response", "response"), 130: ("publish", "unsolicited response"),
}


def frame_length(data: bytes) -> int | None:
    if len(data) < 3:
        return None
    if data[0] != 0x05 or data[1] != 0x64:
        raise ProtocolError(f"dnp3: start bytes {data[:2].hex()} (expected 0564)")
    length = data[2]
    if length < 5:
        raise ProtocolError(f"dnp3: link length {length} under 5")
    user = length - 5
    return 10 + user + 2 * ((user + 15) // 16)  # a CRC after each block of 16 bytes


def decode(frame: bytes, from_client: bool, session: dict[str, Any]) -> list[Pdu]:
    control = frame[3]
    destination, source = struct.unpack_from("<HH", frame, 4)
    detail: dict[str, DetailValue] = {"destination": destination, "source": source}
    if len(frame) < 13:
        return [Pdu("dnp3", "other", "link frame", from_client, detail)]
    transport = frame[10]
    if not transport & 0x40:  # not the first fragment: no application header
        return [Pdu("dnp3", "other", "transport continuation", from_client, detail)]
    function = frame[12]
    detail["function"] = function
    detail["from_master"] = bool(control & 0x80)
    action, name = FUNCTIONS.get(function, ("other", f"function {function}"))
    return [Pdu("dnp3", action, name, from_client, detail)]
