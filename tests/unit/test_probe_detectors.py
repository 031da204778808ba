"""Each security event the probe raises, and a benign plant that raises none; the inventory."""

from __future__ import annotations

import json
from pathlib import Path

from pymodbus.pdu.diag_message import RestartCommunicationsOptionRequest, ReturnQueryDataRequest
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.probe import FIELD_DIAGNOSTIC, Baseline, Probe
from tests.support import pcapgen as g

SCADA, PLC, HMI, BROKER, EDGE = "10.0.0.5", "10.0.0.10", "10.0.0.6", "10.0.0.20", "10.0.0.30"
WRITE = g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1, 2], dev_id=1))


def run(frames: list[g.Frame], **options: object) -> tuple[Probe, list[SecurityEvent]]:
    events: list[SecurityEvent] = []
    probe = Probe(events.append, **options)  # type: ignore[arg-type]
    for ts, frame in sorted(frames, key=lambda item: item[0]):
        probe.feed(ts, frame)
    return probe, events


def kinds(events: list[SecurityEvent]) -> set[str]:
    return {str(event.kind) for event in events}


def benign_plant(frames: list[g.Frame] | None = None) -> list[g.Frame]:
    """SCADA polls and writes the PLC every second; an HMI reads OPC UA; an edge node
    publishes Sparkplug data. Ten minutes of it."""
    frames = [] if frames is None else frames
    modbus = g.Conversation(SCADA, PLC, 502, frames=frames).handshake()
    opcua = g.Conversation(HMI, PLC, 4840, frames=frames).handshake()
    mqtt = g.Conversation(EDGE, BROKER, 1883, frames=frames).handshake()
    opcua.send(g.opcua_hello()).send(g.opcua_open())
    mqtt.send(g.mqtt_connect("edge1", "edge", "pw"))
    mqtt.send(g.mqtt_publish("spBv1.0/plant/NBIRTH/edge1"))
    modbus.send(g.modbus(ReadDeviceInformationRequest(dev_id=1)))
    modbus.send(g.modbus(ReadDeviceInformationResponse(
        read_code=1, information={0: b"Acme", 2: b"4.2.1", 5: b"PLC-9000"})), from_client=False)
    for second in range(600):
        for conv in (modbus, opcua, mqtt):
            conv.ts = 1_700_000_000.0 + second
        modbus.send(g.modbus(ReadHoldingRegistersRequest(address=0, count=2, dev_id=1)))
        modbus.send(g.modbus(ReadHoldingRegistersResponse(registers=[1, 2], dev_id=1)),
                    from_client=False)
        modbus.send(WRITE)
        opcua.send(g.opcua_read())
        mqtt.send(g.mqtt_publish("spBv1.0/plant/NDATA/edge1"))
    return frames


def test_benign_plant_raises_nothing_and_fills_the_inventory() -> None:
    probe, events = run(benign_plant(), learn_seconds=60)
    assert events == []
    assert sum(probe.stats.decode_errors.values()) == 0
    hosts = {host.address: host for host in probe.inventory()}
    plc = hosts[PLC]
    assert set(plc.roles) == {"modbus_server", "opcua_server"}
    assert plc.services == ("tcp/502", "tcp/4840")
    assert (plc.vendor, plc.model, plc.firmware) == ("Acme", "PLC-9000", "4.2.1")
    assert plc.mac == "02:00:0a:00:00:0a"
    assert "modbus_client" in hosts[SCADA].roles and "opcua_client" in hosts[HMI].roles
    assert "mqtt_broker" in hosts[BROKER].roles
    assert {"mqtt_client", "sparkplug_edge_node"} <= set(hosts[EDGE].roles)
    record = plc.to_dict()
    assert set(record) == {"address", "mac", "roles", "protocols", "services", "vendor",
                           "model", "firmware", "first_seen", "last_seen"}
    assert record["first_seen"] <= record["last_seen"]
    json.dumps(record)


def test_a_new_writer_after_learning_is_unusual() -> None:
    frames = benign_plant()
    intruder = g.Conversation("10.0.0.99", PLC, 502, frames=frames, ts=1_700_000_300.5)
    intruder.handshake().send(WRITE)
    _, events = run(frames, learn_seconds=60)
    assert kinds(events) == {EventKind.FIELD_WRITE_UNUSUAL}
    (event,) = events
    assert (event.source, event.target, event.severity) == ("10.0.0.99", PLC, Severity.MEDIUM)
    assert event.detail["function"] == 16


def test_a_known_writer_is_known_per_protocol_and_function() -> None:
    frames = benign_plant()
    conv = g.Conversation(SCADA, PLC, 502, client_port=41000, frames=frames,
                          ts=1_700_000_400.5)
    conv.handshake().send(g.modbus(WriteMultipleRegistersRequest(address=3, registers=[1])))
    _, events = run(frames, learn_seconds=60)
    assert EventKind.FIELD_WRITE_UNUSUAL not in kinds(events)  # fc16 by SCADA is known
    opcua = g.Conversation(HMI, PLC, 4840, client_port=41001, frames=frames,
                           ts=1_700_000_400.7).handshake()
    opcua.send(g.opcua_open()).send(g.opcua_write())
    _, events = run(frames, learn_seconds=60)
    assert any(e.kind == EventKind.FIELD_WRITE_UNUSUAL and e.source == HMI for e in events)


def test_a_baseline_file_replaces_learning(tmp_path: Path) -> None:
    conv = g.Conversation(SCADA, PLC, 502).handshake().send(WRITE)
    _, events = run(conv.frames)  # learning: nothing
    assert events == []
    path = tmp_path / "baseline.json"
    Baseline(frozenset({(SCADA, "modbus", "fc16")})).save(path)
    _, events = run(conv.frames, baseline=Baseline.load(path))
    assert events == []
    other = g.Conversation("10.0.0.7", PLC, 502).handshake().send(WRITE)
    _, events = run(other.frames, baseline=Baseline.load(path))
    assert kinds(events) == {EventKind.FIELD_WRITE_UNUSUAL}


def test_each_new_write_function_is_raised_once() -> None:
    conv = g.Conversation("10.0.0.99", PLC, 502).handshake()
    for _ in range(5):
        conv.send(WRITE).send(g.modbus(WriteMultipleRegistersRequest(address=1, registers=[1],
                                                                     dev_id=1)))
    conv.send(g.modbus(WriteSingleRegisterRequest(address=1, registers=[1], dev_id=1)))
    _, events = run(conv.frames, learn_seconds=0)
    assert [e.detail["function"] for e in events] == [16, 6]


def test_sparkplug_commands_are_writes_on_the_edge_node() -> None:
    conv = g.Conversation("10.0.0.40", BROKER, 1883).handshake()
    conv.send(g.mqtt_connect("host-app")).send(g.mqtt_publish("spBv1.0/plant/DCMD/edge1/pump"))
    _, events = run(conv.frames, learn_seconds=0)
    (event,) = events
    assert event.kind == EventKind.FIELD_WRITE_UNUSUAL and event.target == "plant/edge1/pump"


def test_plc_stop_and_program_download() -> None:
    conv = g.Conversation("10.0.0.66", PLC, 102).handshake()
    conv.send(g.s7_connect()).send(g.s7_job(0xF0)).send(g.s7_job(0x29))
    conv.send(g.s7_job(0x1A)).send(g.s7_job(0x1B)).send(g.s7_job(0x1C))
    _, events = run(conv.frames)
    assert kinds(events) == {EventKind.FIELD_PLC_STOP, EventKind.FIELD_PROGRAM_DOWNLOAD}
    stop = next(e for e in events if e.kind == EventKind.FIELD_PLC_STOP)
    assert stop.severity == Severity.CRITICAL and stop.source == "10.0.0.66"
    assert len(events) == 2  # the three download steps are one event (repeats are counted)


def test_benign_s7_reads_raise_nothing() -> None:
    conv = g.Conversation("10.0.0.66", PLC, 102).handshake()
    conv.send(g.s7_connect()).send(g.s7_job(0xF0)).send(g.s7_job(0x04))
    probe, events = run(conv.frames)
    assert events == [] and probe.stats.pdus["s7comm"] == 3


def test_modbus_restart_is_a_high_diagnostic_event() -> None:
    conv = g.Conversation(SCADA, PLC, 502).handshake()
    conv.send(g.modbus(RestartCommunicationsOptionRequest(dev_id=1)))
    _, events = run(conv.frames)
    (event,) = events
    assert event.kind == FIELD_DIAGNOSTIC and event.severity == Severity.HIGH
    conv = g.Conversation(SCADA, PLC, 502).handshake()
    conv.send(g.modbus(ReturnQueryDataRequest(dev_id=1)))
    _, events = run(conv.frames)
    assert [e.severity for e in events] == [Severity.LOW]


def test_dnp3_stop_application_is_a_plc_stop() -> None:
    conv = g.Conversation("10.0.0.3", "10.0.0.4", 20000).handshake()
    conv.send(g.dnp3_request(18))
    _, events = run(conv.frames)
    assert kinds(events) == {EventKind.FIELD_PLC_STOP}


def test_port_scan_and_host_sweep() -> None:
    frames: list[g.Frame] = []
    scanner = g.Conversation("10.0.0.200", PLC, 1, frames=frames)
    for port in range(1, 60):
        scanner.syn_only(port)
    _, events = run(frames)
    assert [e.kind for e in events] == [EventKind.NETWORK_SCAN]  # once, not per port
    assert events[0].source == "10.0.0.200" and int(events[0].detail["unanswered"]) >= 20
    sweep: list[g.Frame] = []
    for host in range(1, 40):
        g.Conversation("10.0.0.201", f"10.0.1.{host}", 502, frames=sweep).syn_only(502)
    _, events = run(sweep)
    assert [e.kind for e in events] == [EventKind.NETWORK_SCAN]
    assert int(events[0].detail["hosts"]) >= 20


def test_many_normal_connections_are_not_a_scan() -> None:
    frames: list[g.Frame] = []
    for port in range(100):  # one client reconnecting to the same service
        g.Conversation(SCADA, PLC, 502, client_port=30000 + port, frames=frames).handshake()
    _, events = run(frames)
    assert events == []


def test_malformed_industrial_pdus_are_counted_and_raised_once() -> None:
    conv = g.Conversation("10.0.0.77", PLC, 502).handshake()
    for _ in range(50):
        conv.send(bytes.fromhex("0001000000030163ff"))  # function code 99
    probe, events = run(conv.frames)
    assert probe.stats.decode_errors["modbus"] == 50
    (event,) = events
    assert event.kind == EventKind.PROTOCOL_MALFORMED and event.source == "10.0.0.77"
    assert event.detail["protocol"] == "modbus"


def test_opcua_on_an_unknown_port_is_found_by_its_hello() -> None:
    # the client's port is below the server's: the port heuristic alone would swap them
    conv = g.Conversation(HMI, PLC, 50000, client_port=1025).handshake()
    conv.send(g.opcua_hello()).send(g.opcua_open())
    conv.send(g.opcua_endpoints("urn:acme.example:plc", "Acme PLC 9"), from_client=False)
    probe, _ = run(conv.frames)
    hosts = {host.address: host for host in probe.inventory()}
    assert hosts[PLC].roles == ("opcua_server",) and hosts[HMI].roles == ("opcua_client",)
    assert hosts[PLC].model == "Acme PLC 9" and "tcp/50000" in hosts[PLC].services
