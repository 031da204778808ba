"""MQTT 3.1.1 and 5: the fixed header, CONNECT, PUBLISH and SUBSCRIBE, and the Sparkplug B topic
namespace. No library decodes bare MQTT packets without a socket, so this is written from the
specification; passwords are skipped, never read."""

from __future__ import annotations

import struct
from typing import Any, Final

from millnet.errors import ProtocolError
from millnet.probe.model import DetailValue, Pdu

NAMES: Final = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
                6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
                11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}
MAX_PACKET: Final = 1 << 28
SPARKPLUG_COMMANDS: Final = frozenset({"NCMD", "DCMD"})


def _varint(data: bytes, at: int) -> tuple[int | None, int]:
    """The variable byte integer at ``at`` and where it ends; None when bytes are missing."""
    value, shift = 0, 0
    for i in range(4):
        if at + i >= len(data):
            return None, at
        byte = data[at + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at + i + 1
        shift += 7
    raise ProtocolError("mqtt: remaining length longer than 4 bytes")


def frame_length(data: bytes) -> int | None:
    if len(data) < 2:
        return None
    if data[0] >> 4 == 0:
        raise ProtocolError("mqtt: packet type 0 is reserved")
    remaining, end = _varint(data, 1)
    return None if remaining is None else end + remaining


class _Reader:
    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise ProtocolError(f"mqtt: {what} runs past the end of the packet")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack(">H", self.take(2, what))[0])

    def binary(self, what: str) -> bytes:
        return self.take(self.u16(what), what)

    def text(self, what: str) -> str:
        try:
            return self.binary(what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"mqtt: {what} is not UTF-8") from exc

    def skip_properties(self) -> None:
        length, end = _varint(self.data, self.at)
        if length is None:
            raise ProtocolError("mqtt: properties length runs past the end of the packet")
        self.at = end
        self.take(length, "properties")


def decode(frame: bytes, from_client: bool, session: dict[str, Any]) -> list[Pdu]:
    kind, flags = frame[0] >> 4, frame[0] & 0x0F
    _, start = _varint(frame, 1)
    reader = _Reader(frame, start)
    name = NAMES[kind]
    if kind == 1:
        return [_connect(reader, session)]
    if kind == 3:
        return [_publish(reader, flags, from_client)]
    if kind == 8:
        return [_subscribe(reader, session)]
    if kind == 2:
        reader.u8("connack flags")
        return [Pdu("mqtt", "response", name, from_client,
                    {"return_code": reader.u8("return code")})]
    return [Pdu("mqtt", "other", name, from_client)]


def _connect(reader: _Reader, session: dict[str, Any]) -> Pdu:
    protocol = reader.text("protocol name")
    if protocol not in ("MQTT", "MQIsdp"):
        raise ProtocolError(f"mqtt: CONNECT protocol name {protocol[:16]!r}")
    level = reader.u8("protocol level")
    flags = reader.u8("connect flags")
    reader.u16("keep alive")
    session["mqtt_level"] = level
    if level == 5:
        reader.skip_properties()
    detail: dict[str, DetailValue] = {"client_id": reader.text("client id")[:128],
                                      "protocol_level": level}
    if flags & 0x04:  # will: properties (v5), topic, payload
        if level == 5:
            reader.skip_properties()
        detail["will_topic"] = reader.text("will topic")[:128]
        reader.binary("will payload")
    detail["username_present"] = bool(flags & 0x80)
    if flags & 0x80:
        detail["username"] = reader.text("user name")[:128]
    detail["password_present"] = bool(flags & 0x40)  # the password itself is never read
    return Pdu("mqtt", "connect", "CONNECT", True, detail)


def _publish(reader: _Reader, flags: int, from_client: bool) -> Pdu:
    qos = (flags >> 1) & 3
    if qos == 3:
        raise ProtocolError("mqtt: PUBLISH with QoS 3")
    topic = reader.text("topic")
    detail: dict[str, DetailValue] = {"topic": topic[:200], "qos": qos,
                                      "retain": bool(flags & 1)}
    action = "publish"
    parts = topic.split("/")
    if parts[0] == "spBv1.0" and len(parts) in (4, 5):
        detail.update({"sparkplug_type": parts[2], "group": parts[1], "edge_node": parts[3]})
        if len(parts) == 5:
            detail["device"] = parts[4]
        if parts[2] in SPARKPLUG_COMMANDS:
            action = "write"
    return Pdu("mqtt", action, "PUBLISH", from_client, detail)


def _subscribe(reader: _Reader, session: dict[str, Any]) -> Pdu:
    reader.u16("packet id")
    if session.get("mqtt_level") == 5:
        reader.skip_properties()
    topics = []
    while reader.at < len(reader.data):
        topics.append(reader.text("topic filter"))
        reader.u8("subscription options")
    if not topics:
        raise ProtocolError("mqtt: SUBSCRIBE without a topic filter")
    return Pdu("mqtt", "subscribe", "SUBSCRIBE", True, {"topics": ",".join(topics)[:200]})
