"""The demo's field devices (issue 11): the simulated OPC UA plant and the simulated Modbus
plant, served in the demo's own event loop on free ports and added to the demo node as sources
of its configuration (``origin`` config), so the API lists them with their health and their
devices carry data like the Sparkplug machines.

* OPC UA (``opcua-plant``): ``opc.tcp://127.0.0.1:<port>/millnet/``, security none, the site
  folder ``Suzhou`` imported by the path rule: ``Suzhou/Machining/L1/CNC-1``,
  ``Suzhou/Utilities/Water/Pump-1`` and ``Suzhou/Packaging/L2/Counter-1``;
* Modbus TCP (``modbus-plant``): ``127.0.0.1:<port>``, a gateway with an energy meter, a pump's
  VFD and a packer behind it (``Suzhou/Utilities/Modbus-GW/meter-1``...), polled every second
  (the energy counter every 5 s).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from millnet.connectivity.modbus import ModbusSpec
from millnet.connectivity.opcua import ImportFolder, OpcUaSpec
from millnet.errors import NotFound
from millnet.sim import modbus_server, opcua_server
from millnet.sources import SourceHost

OPCUA_SOURCE = "opcua-plant"
MODBUS_SOURCE = "modbus-plant"
MODBUS_PREFIX = "Suzhou/Utilities/Modbus-GW"


@dataclass(frozen=True)
class FieldDevices:
    opcua_endpoint: str
    modbus_address: str


def opcua_spec(endpoint: str) -> OpcUaSpec:
    return OpcUaSpec(name=OPCUA_SOURCE, endpoint=endpoint, publishing_interval_ms=500,
                     import_folders=[ImportFolder(browse_path="Suzhou",
                                                  sampling_interval_ms=500)])


def modbus_spec(port: int) -> ModbusSpec:
    return ModbusSpec.model_validate({
        "name": MODBUS_SOURCE, "host": "127.0.0.1", "port": port,
        "poll_groups": [{"name": "default", "interval_ms": 1000},
                        {"name": "slow", "interval_ms": 5000}],
        "registers": modbus_server.plant_register_map(MODBUS_PREFIX)})


@contextlib.asynccontextmanager
async def field_devices(host: SourceHost) -> AsyncIterator[FieldDevices]:
    """Serve both simulated plants and add them to ``host`` while the context is open."""
    port = opcua_server.free_port()
    async with (opcua_server.serve_plant(port=port, animate_s=1.0) as ua_plant,
                modbus_server.serve_plant(port=0, tick_s=0.5) as mb_plant):
        host.add(opcua_spec(ua_plant.endpoint))
        host.add(modbus_spec(mb_plant.port))
        try:
            yield FieldDevices(ua_plant.endpoint, f"{mb_plant.host}:{mb_plant.port}")
        finally:  # the sources stop before their servers do
            for name in (OPCUA_SOURCE, MODBUS_SOURCE):
                with contextlib.suppress(NotFound):  # already removed through the API
                    await host.remove(name)
