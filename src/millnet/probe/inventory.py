"""The inventory: hosts as the probe sees them, with roles, services and identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from millnet.probe.model import ProbedHost

#: (server role, client role) of a protocol
ROLES: Final = {
    "modbus": ("modbus_server", "modbus_client"), "opcua": ("opcua_server", "opcua_client"),
    "mqtt": ("mqtt_broker", "mqtt_client"), "s7comm": ("plc", "s7_client"),
    "dnp3": ("dnp3_outstation", "dnp3_master"),
}


@dataclass(slots=True)
class _Host:
    mac: str
    first_seen: float
    last_seen: float
    roles: set[str] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    vendor: str = ""
    model: str = ""
    firmware: str = ""


class Inventory:
    """At most ``max_hosts`` hosts: past that, new addresses are counted in ``dropped``, not
    kept (a capture with forged sources must not exhaust memory)."""

    def __init__(self, max_hosts: int = 65536) -> None:
        self.max_hosts = max_hosts
        self.dropped = 0
        self._hosts: dict[str, _Host] = {}

    def seen(self, address: str, mac: str, ts: float) -> None:
        host = self._hosts.get(address)
        if host is None:
            if len(self._hosts) >= self.max_hosts:
                self.dropped += 1
                return
            self._hosts[address] = _Host(mac, ts, ts)
            return
        host.first_seen = min(host.first_seen, ts)
        host.last_seen = max(host.last_seen, ts)
        if mac and not host.mac:
            host.mac = mac

    def service(self, address: str, port: int, protocol: str | None) -> None:
        host = self._hosts.get(address)
        if host is not None:
            host.services.add(f"tcp/{port}")
            if protocol:
                host.protocols.add(protocol)

    def exchange(self, server: str, client: str, protocol: str) -> None:
        """Two hosts spoke ``protocol``: give each its side's role."""
        server_role, client_role = ROLES[protocol]
        for address, role in ((server, server_role), (client, client_role)):
            host = self._hosts.get(address)
            if host is not None:
                host.roles.add(role)
                host.protocols.add(protocol)

    def role(self, address: str, role: str) -> None:
        host = self._hosts.get(address)
        if host is not None:
            host.roles.add(role)

    def identity(self, address: str, vendor: str = "", model: str = "",
                 firmware: str = "") -> None:
        host = self._hosts.get(address)
        if host is not None:
            host.vendor = vendor or host.vendor
            host.model = model or host.model
            host.firmware = firmware or host.firmware

    def hosts(self) -> list[ProbedHost]:
        return [ProbedHost(address, h.mac, tuple(sorted(h.roles)), tuple(sorted(h.protocols)),
                           tuple(sorted(h.services, key=_port_order)), h.vendor, h.model,
                           h.firmware, h.first_seen, h.last_seen)
                for address, h in sorted(self._hosts.items())]


def _port_order(service: str) -> tuple[str, int]:
    transport, _, port = service.partition("/")
    return transport, int(port)
