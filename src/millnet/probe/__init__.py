"""The passive network probe (``millnet probe``): reads a capture or an interface, reassembles
TCP, decodes Modbus/TCP, OPC UA binary, MQTT/Sparkplug B, S7comm and DNP3 headers, keeps an
inventory of hosts and raises security events. It never sends a packet. See docs/probe.md."""

from millnet.probe.capture import live_capture, read_capture
from millnet.probe.detectors import FIELD_DIAGNOSTIC, Baseline
from millnet.probe.model import Pdu, ProbedHost, ProbeStats
from millnet.probe.probe import Probe

__all__ = [
           "FIELD_DIAGNOSTIC",
           "Baseline",
           "Pdu",
           "Probe",
           "ProbeStats",
           "ProbedHost",
           "live_capture",
           "read_capture",
]
