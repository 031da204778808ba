"""Stream dissectors: each splits a reassembled TCP byte stream into frames and decodes one.

A dissector is two functions. ``frame_length(data)`` returns the length of the frame that
starts ``data`` once its header is there (``None``: not enough bytes yet) and raises
:class:`~millnet.errors.ProtocolError` when the header cannot start a frame; ``decode(frame,
from_client, session)`` turns one whole frame into PDUs, raising ``ProtocolError`` when it is
malformed. ``session`` is the flow's own dict, for what one message tells about the next (an
OPC UA channel's security policy, an MQTT connection's protocol level).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from millnet.probe.dissect import dnp3, modbus, mqtt, opcua, s7comm
from millnet.probe.model import Pdu


class Dissector(NamedTuple):
    name: str
    frame_length: Callable[[bytes], int | None]
    decode: Callable[[bytes, bool, dict[str, Any]], list[Pdu]]


DISSECTORS: dict[str, Dissector] = {
    "modbus": Dissector("modbus", modbus.frame_length, modbus.decode),
    "opcua": Dissector("opcua", opcua.frame_length, opcua.decode),
    "mqtt": Dissector("mqtt", mqtt.frame_length, mqtt.decode),
    "s7comm": Dissector("s7comm", s7comm.frame_length, s7comm.decode),
    "dnp3": Dissector("dnp3", dnp3.frame_length, dnp3.decode),
}

#: Well-known server ports; an OPC UA Hello on any other port is recognised too.
PORTS: dict[int, str] = {502: "modbus", 4840: "opcua", 1883: "mqtt", 102: "s7comm",
                         20000: "dnp3"}


def sniff(data: bytes) -> tuple[str, bool] | None:
    """The protocol of a stream on an unknown port from its first bytes, and whether their
    sender is the client (OPC UA only: other industrial headers are too short to tell apart
    from random traffic). A Hello comes from the client, a ReverseHello from the server."""
    if len(data) >= 8 and data[:4] in (b"HELF", b"RHEF"):
        return "opcua", data[:3] == b"HEL"
    return None


__all__ = ["DISSECTORS", "PORTS", "Dissector", "sniff"]
