"""The probe: frames in, inventory, counters and security events out. Sans-IO: ``feed`` takes
one captured frame; where frames come from is ``capture``'s business."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping
from typing import Final

import dpkt  # type: ignore[import-untyped]

from millnet.errors import InvalidInput, ProtocolError
from millnet.model.security import SecurityEvent
from millnet.probe.detectors import Baseline, Detectors
from millnet.probe.dissect import DISSECTORS, PORTS, sniff
from millnet.probe.flows import Direction, Flow, FlowKey, FlowTable
from millnet.probe.inventory import Inventory
from millnet.probe.model import Pdu, ProbedHost, ProbeStats

SYN, ACK, FIN, RST = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST
#: What dpkt raises on a frame that does not parse
PACKET_ERRORS: Final = (dpkt.UnpackError, dpkt.NeedData, struct.error, ValueError, IndexError,
                        KeyError, TypeError)
#: A frame header is never longer than this; peeking a copy of it keeps framing O(1)
HEADER_PEEK: Final = 16


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _mac(raw: bytes) -> str:
    return "" if raw == bytes(6) else raw.hex(":")


class Probe:
    """Passive: decodes, inventories, detects; never sends. ``on_event`` receives every
    security event (the CLI prints them; a node forwards them to its federation)."""

    def __init__(self, on_event: Callable[[SecurityEvent], None] | None = None, *,
                 baseline: Baseline | None = None, learn_seconds: float = 60.0,
                 max_flows: int = 4096, max_buffer: int = 64 << 10,
                 max_hosts: int = 65536, scan_threshold: int = 20,
                 ports: Mapping[int, str] | None = None) -> None:
        unknown = sorted(set((ports or {}).values()) - set(DISSECTORS))
        if unknown:
            raise InvalidInput(f"no dissector for {', '.join(unknown)} "
                               f"(there are {', '.join(sorted(DISSECTORS))})", "ports")
        self.ports = {**PORTS, **(ports or {})}
        self.on_event = on_event
        self.stats = ProbeStats()
        self.flows = FlowTable(max_flows=max_flows, max_buffer=max_buffer)
        self.max_buffer = max_buffer
        self._inventory = Inventory(max_hosts)
        self.detectors = Detectors(self._emit, baseline, learn_seconds,
                                   scan_threshold=scan_threshold)

    def _emit(self, event: SecurityEvent) -> None:
        self.stats.events[str(event.kind)] += 1
        if self.on_event is not None:
            self.on_event(event)

    def inventory(self) -> list[ProbedHost]:
        return self._inventory.hosts()

    def baseline(self) -> Baseline:
        """The writers seen so far, to save as the baseline of a later run."""
        return Baseline(frozenset(self.detectors.writers))

    def feed(self, ts: float, frame: bytes) -> None:
        """One captured Ethernet frame. Never raises for what is in ``frame``."""
        self.stats.packets += 1
        self.stats.bytes += len(frame)
        self.detectors.tick(ts)
        try:
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                self.stats.non_ip += 1
                return
            src, dst = _address(ip.src), _address(ip.dst)
            tcp = ip.data
        except PACKET_ERRORS:
            self.stats.decode_errors["packet"] += 1
            return
        self._inventory.seen(src, _mac(eth.src), ts)
        self._inventory.seen(dst, _mac(eth.dst), ts)
        self.stats.evictions = self.flows.evictions
        if isinstance(tcp, dpkt.tcp.TCP):
            self._tcp(ts, src, dst, tcp)
            self.stats.flows = self.flows.created
            self.stats.evictions = self.flows.evictions

    def _tcp(self, ts: float, src: str, dst: str, tcp: dpkt.tcp.TCP) -> None:
        flags, sport, dport = int(tcp.flags), int(tcp.sport), int(tcp.dport)
        payload = bytes(tcp.data)
        if flags & SYN and not flags & ACK:
            self.detectors.syn(ts, src, dst, dport)
        elif flags & SYN:
            self.detectors.answered(dst, src, sport)
            self._inventory.service(src, sport, self.ports.get(sport))
        flow, from_client = self._flow(ts, src, sport, dst, dport, flags, payload)
        if flow is None:
            return
        flow.last_seen = ts
        direction = flow.client if from_client else flow.server
        seq = int(tcp.seq)
        if flags & SYN:
            direction.next_seq = (seq + 1) % (1 << 32)
            direction.resync()
            seq += 1
        if payload and flow.protocol:
            if not from_client:
                self._inventory.service(src, sport, flow.protocol)
            data, jumped = direction.accept(seq % (1 << 32), payload)
            if jumped:
                self.stats.resyncs += 1
            if data:
                self._frames(ts, flow, direction, data, from_client)
        if flags & FIN:
            flow.fins |= 1 if from_client else 2
        if flags & RST or flow.fins == 3:
            self.flows.remove(flow.key)

    def _flow(self, ts: float, src: str, sport: int, dst: str, dport: int, flags: int,
              payload: bytes) -> tuple[Flow | None, bool]:
        forward: FlowKey = (src, sport, dst, dport)
        if (flow := self.flows.find(forward)) is not None:
            return flow, True
        if (flow := self.flows.find((dst, dport, src, sport))) is not None:
            return flow, False
        if flags & SYN:  # the handshake tells who is the client
            from_client = not flags & ACK
        elif dport in self.ports or sport in self.ports:
            from_client = dport in self.ports
        else:
            from_client = dport < sport
        protocol = self.ports.get(dport if from_client else sport)
        if protocol is None and payload and (sniffed := sniff(payload)) is not None:
            protocol, from_client = sniffed  # an OPC UA Hello comes from the client
        if protocol is None:
            return None, from_client  # not industrial: only SYNs and services are kept
        key = forward if from_client else (dst, dport, src, sport)
        return self.flows.create(key, protocol, ts, bool(flags & SYN)), from_client

    def _frames(self, ts: float, flow: Flow, direction: Direction, data: bytes,
                from_client: bool) -> None:
        assert flow.protocol is not None
        dissector = DISSECTORS[flow.protocol]
        if direction.skip:
            dropped = min(direction.skip, len(data))
            direction.skip -= dropped
            self.stats.skipped_bytes += dropped
            data = data[dropped:]
        buffer = direction.buffer
        buffer += data
        while buffer:
            try:
                length = dissector.frame_length(bytes(buffer[:HEADER_PEEK]))
            except ProtocolError as exc:
                self._malformed(ts, flow, direction, from_client, exc)
                direction.resync()
                return
            if length is None:
                return
            if length > self.max_buffer:
                dropped = min(length, len(buffer))
                direction.skip = length - dropped
                self.stats.skipped_bytes += dropped
                del buffer[:dropped]
                continue
            if len(buffer) < length:
                return
            frame = bytes(buffer[:length])
            del buffer[:length]
            try:
                pdus = dissector.decode(frame, from_client, flow.session)
            except ProtocolError as exc:
                self._malformed(ts, flow, direction, from_client, exc)
                continue
            direction.synced = True
            for pdu in pdus:
                self._pdu(ts, flow, pdu)

    def _malformed(self, ts: float, flow: Flow, direction: Direction, from_client: bool,
                   exc: ProtocolError) -> None:
        assert flow.protocol is not None
        self.stats.decode_errors[flow.protocol] += 1
        if not direction.synced:  # mid-stream or after a hole: bytes of a PDU we joined late
            return
        client, server = flow.key[0], flow.key[2]
        sender, receiver = (client, server) if from_client else (server, client)
        self.detectors.malformed(ts, flow.protocol, sender, receiver, str(exc))

    def _pdu(self, ts: float, flow: Flow, pdu: Pdu) -> None:
        self.stats.pdus[pdu.protocol] += 1
        client, server = flow.key[0], flow.key[2]
        self._inventory.exchange(server, client, pdu.protocol)
        if pdu.action == "identify" and not pdu.from_client:
            self._inventory.identity(server, str(pdu.detail.get("vendor", "")),
                                     str(pdu.detail.get("model", "")),
                                     str(pdu.detail.get("firmware", "")))
        if pdu.protocol == "mqtt" and "sparkplug_type" in pdu.detail:
            publisher = client if pdu.from_client else server
            if pdu.detail["sparkplug_type"] in ("NBIRTH", "NDATA", "DBIRTH", "DDATA"):
                self._inventory.role(publisher, "sparkplug_edge_node")
                if "device" in pdu.detail:
                    self._inventory.role(publisher, "sparkplug_device_gateway")
        self.detectors.on_pdu(ts, pdu, client, server)
