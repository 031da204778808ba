"""Capture files (pcap, pcapng, other link types) and hostile input through the reader and
the probe: only counted errors or one clear error, never a crash."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.pdu.register_message import WriteMultipleRegistersRequest

from millnet.errors import InvalidInput, ProtocolError
from millnet.probe import Probe, read_capture
from millnet.probe.capture import to_ethernet
from tests.support import pcapgen as g


def sample_frames() -> list[g.Frame]:
    frames: list[g.Frame] = []
    modbus = g.Conversation("10.0.0.5", "10.0.0.10", 502, frames=frames).handshake()
    modbus.send(g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1, 2])), size=4)
    opcua = g.Conversation("10.0.0.6", "10.0.0.11", 4840, frames=frames).handshake()
    opcua.send(g.opcua_hello()).send(g.opcua_open()).send(g.opcua_write(), size=9)
    opcua.send(g.opcua_endpoints(), from_client=False, size=50)
    mqtt = g.Conversation("10.0.0.7", "10.0.0.12", 1883, frames=frames).handshake()
    mqtt.send(g.mqtt_connect("c1", "u")).send(g.mqtt_publish("spBv1.0/g/NBIRTH/e"))
    s7 = g.Conversation("10.0.0.8", "10.0.0.13", 102, frames=frames).handshake()
    s7.send(g.s7_connect()).send(g.s7_job(0x04))
    return frames


@pytest.mark.parametrize("pcapng", [False, True])
def test_pcap_and_pcapng_read_back_the_frames(tmp_path: Path, pcapng: bool) -> None:
    frames = sample_frames()
    path = g.write_pcap(tmp_path / "plant.cap", frames, pcapng=pcapng)
    read = list(read_capture(path))
    assert [frame for _, frame in read] == [frame for _, frame in sorted(frames)]
    assert read[0][0] == pytest.approx(frames[0][0], abs=1e-5)
    probe = Probe()
    for ts, frame in read:
        probe.feed(ts, frame)
    assert probe.stats.pdus == {"modbus": 1, "opcua": 4, "mqtt": 2, "s7comm": 2}


def test_raw_ip_and_cooked_link_types_become_ethernet() -> None:
    frame = sample_frames()[0][1]
    ip = frame[14:]
    assert to_ethernet(dpkt.pcap.DLT_RAW, ip)[12:] == frame[12:]
    cooked = b"\x00\x00\x03\x04\x00\x06" + bytes(8) + b"\x08\x00" + ip
    assert to_ethernet(113, cooked)[12:] == frame[12:]
    assert to_ethernet(0, struct.pack("<I", 2) + ip)[12:] == frame[12:]
    with pytest.raises(InvalidInput, match="link type 105"):
        to_ethernet(105, ip)


def test_not_a_capture_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture file\n")
    with pytest.raises(InvalidInput, match="not a pcap or pcapng"):
        list(read_capture(path))
    with pytest.raises(InvalidInput, match="cannot read"):
        list(read_capture(tmp_path / "missing.pcap"))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), pcapng=st.booleans())
def test_random_files_give_only_clear_errors(tmp_path: Path, data: bytes,
                                             pcapng: bool) -> None:
    header = (b"\x0a\x0d\x0d\x0a" if pcapng else bytes.fromhex("d4c3b2a1")) if data[:1] else b""
    path = tmp_path / "random.pcap"
    path.write_bytes(header + data)
    try:
        for ts, frame in read_capture(path):
            Probe().feed(ts, frame)
    except (InvalidInput, ProtocolError):
        pass


VALID_FILE = {False: b"", True: b""}


def _valid(tmp_path: Path, pcapng: bool) -> bytes:
    if not VALID_FILE[pcapng]:
        path = g.write_pcap(tmp_path / "valid.pcap", sample_frames(), pcapng=pcapng)
        VALID_FILE[pcapng] = path.read_bytes()
    return VALID_FILE[pcapng]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pcapng=st.booleans(),
       flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8),
       cut=st.integers(0, 1 << 16))
def test_mutated_captures_give_counted_errors(tmp_path: Path, pcapng: bool,
                                              flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_valid(tmp_path, pcapng))
    for at, value in flips:
        data[at % len(data)] = value
    if cut % 4 == 0:
        data = data[:cut % len(data)]
    path = tmp_path / "mutated.pcap"
    path.write_bytes(bytes(data))
    probe = Probe()
    try:
        for ts, frame in read_capture(path):
            probe.feed(ts, frame)
    except (InvalidInput, ProtocolError):
        pass
    assert probe.stats.packets <= 200


FRAMES = [frame for _, frame in sample_frames()]


@settings(max_examples=500, deadline=None)
@given(picks=st.lists(st.integers(0, len(FRAMES) - 1), min_size=1, max_size=30),
       flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=10),
       junk=st.binary(max_size=200))
def test_mutated_frames_into_the_probe_never_raise(picks: list[int],
                                                   flips: list[tuple[int, int]],
                                                   junk: bytes) -> None:
    probe = Probe(max_flows=4, learn_seconds=0)
    for index, pick in enumerate(picks):
        frame = bytearray(FRAMES[pick])
        if index % 2:
            for at, value in flips:
                frame[at % len(frame)] = value
        probe.feed(float(index), bytes(frame))
    probe.feed(99.0, junk)
    assert probe.stats.packets == len(picks) + 1
    probe.inventory()
