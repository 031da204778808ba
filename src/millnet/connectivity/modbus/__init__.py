"""Modbus TCP adapter (issue 11, scope 3) on pymodbus: register maps from TOML and CSV, poll
groups with their own intervals, reads coalesced by a pure planner, exceptions as BAD quality,
backoff per unit and per connection, writes with read-back. See docs/modbus.md."""

from millnet.connectivity.modbus.adapter import ModbusAdapter
from millnet.connectivity.modbus.spec import ModbusSpec, PollGroup, RegisterSpec

__all__ = ["ModbusAdapter", "ModbusSpec", "PollGroup", "RegisterSpec"]
