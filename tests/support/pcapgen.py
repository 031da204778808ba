"""Captures built by tests: protocol bytes from the real libraries (pymodbus, asyncua) or small
builders, in Ethernet/IPv4/TCP with handshakes, segmentation and reordering, written with
dpkt. Nothing is downloaded; nothing large is committed."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dpkt  # type: ignore[import-untyped]
from asyncua import ua
from asyncua.common.connection import MessageChunk
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.ua import ua_binary
from asyncua.ua.attribute_ids import AttributeIds
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU

Frame = tuple[float, bytes]


def _mac(address: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(address)


@dataclass
class Conversation:
    """One TCP connection; frames accumulate in ``frames`` (shared lists make a capture)."""

    client: str
    server: str
    server_port: int
    client_port: int = 40000
    frames: list[Frame] = field(default_factory=list)
    ts: float = 1_700_000_000.0
    client_seq: int = 1000
    server_seq: int = 500_000

    def _packet(self, from_client: bool, flags: int, payload: bytes = b"",
                seq: int | None = None) -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        sport, dport = ((self.client_port, self.server_port) if from_client
                        else (self.server_port, self.client_port))
        own = self.client_seq if from_client else self.server_seq
        other = self.server_seq if from_client else self.client_seq
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=own if seq is None else seq,
                           ack=other, flags=flags, data=payload)
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, data=tcp)
        ip.len = len(bytes(ip))
        eth = dpkt.ethernet.Ethernet(src=_mac(src), dst=_mac(dst), type=0x0800, data=ip)
        return bytes(eth)

    def _emit(self, packet: bytes) -> None:
        self.ts += 0.001
        self.frames.append((self.ts, packet))

    def handshake(self) -> Conversation:
        self._emit(self._packet(True, dpkt.tcp.TH_SYN))
        self.client_seq += 1
        self._emit(self._packet(False, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK))
        self.server_seq += 1
        self._emit(self._packet(True, dpkt.tcp.TH_ACK))
        return self

    def segments(self, data: bytes, from_client: bool = True,
                 size: int | None = None) -> list[bytes]:
        """The packets that carry ``data`` in segments of ``size`` (not yet emitted)."""
        size = size or len(data)
        packets = []
        for at in range(0, len(data), size):
            chunk = data[at:at + size]
            seq = self.client_seq if from_client else self.server_seq
            packets.append(self._packet(from_client, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, chunk,
                                        seq))
            if from_client:
                self.client_seq += len(chunk)
            else:
                self.server_seq += len(chunk)
        return packets

    def send(self, data: bytes, from_client: bool = True, size: int | None = None,
             order: list[int] | None = None) -> Conversation:
        packets = self.segments(data, from_client, size)
        for index in order or range(len(packets)):
            self._emit(packets[index])
        return self

    def syn_only(self, port: int) -> None:
        self.server_port = port
        self._emit(self._packet(True, dpkt.tcp.TH_SYN))


def write_pcap(path: Path, frames: list[Frame], pcapng: bool = False) -> Path:
    with path.open("wb") as handle:
        writer = dpkt.pcapng.Writer(handle) if pcapng else dpkt.pcap.Writer(handle)
        for ts, frame in sorted(frames, key=lambda item: item[0]):
            writer.writepkt(frame, ts=ts)
    return path


# --- Modbus (pymodbus' own encoders)

def modbus(pdu: ModbusPDU) -> bytes:
    return bytes(FramerSocket(DecodePDU(False)).buildFrame(pdu))


# --- OPC UA (asyncua's own encoders)

def opcua_hello(url: str = "opc.tcp://plc:4840") -> bytes:
    hello = ua.Hello()
    hello.EndpointUrl = ua.String(url)
    return bytes(ua_binary.uatcp_to_binary(cast(ua.MessageType, ua.MessageType.Hello), hello))


def opcua_chunk(body: bytes, kind: bytes = ua.MessageType.SecureMessage) -> bytes:
    policy = SecurityPolicyNone()  # type: ignore[no-untyped-call]
    chunk = MessageChunk.message_to_chunks(policy, body, 65536,
                                           message_type=cast(ua.MessageType, kind))[0]
    chunk.SequenceHeader.SequenceNumber = ua.UInt32(1)
    chunk.SequenceHeader.RequestId = ua.UInt32(1)
    return bytes(chunk.to_binary())


def opcua_open() -> bytes:
    return opcua_chunk(ua_binary.struct_to_binary(ua.OpenSecureChannelRequest()),
                       ua.MessageType.SecureOpen)


def opcua_write() -> bytes:
    request = ua.WriteRequest()
    value = ua.WriteValue()
    value.NodeId = ua.NodeId(ua.Int32(5), ua.Int16(2))
    value.AttributeId = AttributeIds.Value
    value.Value = ua.DataValue(ua.Variant(3.0))
    request.Parameters.NodesToWrite = [value]
    return opcua_chunk(ua_binary.struct_to_binary(request))


def opcua_read() -> bytes:
    request = ua.ReadRequest()
    read = ua.ReadValueId()
    read.NodeId = ua.NodeId(ua.Int32(5), ua.Int16(2))
    read.AttributeId = AttributeIds.Value
    request.Parameters.NodesToRead = [read]
    return opcua_chunk(ua_binary.struct_to_binary(request))


def opcua_endpoints(product_uri: str = "urn:acme.example:plc", name: str = "Acme PLC 9") -> bytes:
    app = ua.ApplicationDescription()
    app.ProductUri = product_uri
    app.ApplicationUri = "urn:plc1"
    app.ApplicationName = ua.LocalizedText(name)
    endpoint = ua.EndpointDescription()
    endpoint.Server = app
    response = ua.GetEndpointsResponse()
    response.Endpoints = [endpoint]
    return opcua_chunk(ua_binary.struct_to_binary(response))


# --- MQTT (written from the specification: no library builds bare packets)

def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def mqtt_connect(client_id: str, username: str | None = None, password: str | None = None,
                 level: int = 4) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string("MQTT") + bytes([level, flags]) + struct.pack(">H", 60)
    body += (b"\x00" if level == 5 else b"") + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(0x10, body)


def mqtt_publish(topic: str, payload: bytes = b"x", qos: int = 0, retain: bool = False) -> bytes:
    body = _string(topic) + (struct.pack(">H", 1) if qos else b"") + payload
    return _packet(0x30 | (qos << 1) | int(retain), body)


def mqtt_subscribe(topic: str) -> bytes:
    return _packet(0x82, struct.pack(">H", 1) + _string(topic) + b"\x00")


# --- S7comm and DNP3 (documented header layouts)

def s7_job(function: int, parameters: bytes = b"") -> bytes:
    param = bytes([function]) + parameters
    s7 = bytes([0x32, 1, 0, 0, 0, 1]) + struct.pack(">HH", len(param), 0) + param
    cotp = bytes([2, 0xF0, 0x80])
    return struct.pack(">BBH", 3, 0, 4 + len(cotp) + len(s7)) + cotp + s7


def s7_connect() -> bytes:
    cotp = bytes([17, 0xE0, 0, 0, 0, 1, 0, 0xC1, 2, 1, 0, 0xC2, 2, 1, 2, 0xC0, 1, 0x0A])
    return struct.pack(">BBH", 3, 0, 4 + len(cotp)) + cotp


def dnp3_request(function: int, destination: int = 10, source: int = 1) -> bytes:
    user = bytes([0xC0, 0xC0, function])
    header = bytes([0x05, 0x64, 5 + len(user), 0xC4]) + struct.pack("<HH", destination, source)
    return header + b"\x00\x00" + user + b"\x00\x00"  # CRCs are not checked by the probe
