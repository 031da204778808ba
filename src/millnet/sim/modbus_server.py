"""A simulated Modbus TCP plant (pymodbus server): a gateway with three devices behind it.

* unit 1, an **energy meter**: input registers of float32 (voltage, current, power,
  frequency), the energy counter as float64 and the power factor as int16 scaled by 0.001;
* unit 2, a **VFD** driving a pump: a writable speed setpoint (holding 100, rpm) that the
  actual speed follows, motor current (0.1 A), DC bus voltage, a run command coil and a
  running discrete input;
* unit 3, a **packaging line counter**: good and rejected packs as uint32, line speed as a
  word-swapped float32 (little word order, as many PLCs send it), a few discrete inputs.

Values move with time (a task updates them every ``tick_s``). :func:`plant_register_map`
returns the map a source uses to poll it; ``millnet modbus sim`` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from millnet.connectivity.modbus.codec import encode

METER, VFD, COUNTER = 1, 2, 3
_FC_INPUT, _FC_HOLDING, _FC_COIL, _FC_DISCRETE = 4, 16, 5, 2


def _device(unit: int, coils: int = 16, discrete: int = 16, holding: tuple[int, int] = (0, 16),
            inputs: tuple[int, int] = (0, 16)) -> SimDevice:
    """A device with four separate tables (bit addressing for coils and discrete inputs)."""
    return SimDevice(unit, simdata=(
        [SimData(0, values=[False] * coils, datatype=DataType.BITS)],
        [SimData(0, values=[False] * discrete, datatype=DataType.BITS)],
        [SimData(holding[0], count=holding[1], values=0, datatype=DataType.REGISTERS)],
        [SimData(inputs[0], count=inputs[1], values=0, datatype=DataType.REGISTERS)],
    ))


def plant_register_map(prefix: str = "plant1/utilities/line1") -> list[dict[str, Any]]:
    """The register map of the simulated plant (devices ``<prefix>/meter-1`` ...)."""
    m, v, c = f"{prefix}/meter-1", f"{prefix}/pump-vfd-1", f"{prefix}/packer-1"
    rows: list[dict[str, Any]] = [
        {"device": m, "point": "voltage_l1", "table": "input", "address": 0,
         "type": "float32", "unit": "V", "unit_id": METER},
        {"device": m, "point": "current_l1", "table": "input", "address": 2,
         "type": "float32", "unit": "A", "unit_id": METER},
        {"device": m, "point": "active_power", "table": "input", "address": 4,
         "type": "float32", "unit": "kW", "unit_id": METER},
        {"device": m, "point": "energy", "table": "input", "address": 6,
         "type": "float64", "unit": "kWh", "unit_id": METER, "poll_group": "slow"},
        {"device": m, "point": "frequency", "table": "input", "address": 10,
         "type": "float32", "unit": "Hz", "unit_id": METER},
        {"device": m, "point": "power_factor", "table": "input", "address": 12,
         "type": "int16", "scale": 0.001, "unit_id": METER},
        {"device": v, "point": "speed_setpoint", "table": "holding", "address": 100,
         "type": "uint16", "unit": "rpm", "unit_id": VFD, "writable": True},
        {"device": v, "point": "speed", "table": "holding", "address": 101,
         "type": "uint16", "unit": "rpm", "unit_id": VFD},
        {"device": v, "point": "motor_current", "table": "holding", "address": 102,
         "type": "uint16", "scale": 0.1, "unit": "A", "unit_id": VFD},
        {"device": v, "point": "dc_bus_voltage", "table": "holding", "address": 103,
         "type": "uint16", "unit": "V", "unit_id": VFD},
        {"device": v, "point": "run_command", "table": "coil", "address": 0,
         "unit_id": VFD, "writable": True},
        {"device": v, "point": "running", "table": "discrete_input", "address": 0,
         "unit_id": VFD},
        {"device": c, "point": "good_count", "table": "holding", "address": 200,
         "type": "uint32", "unit_id": COUNTER},
        {"device": c, "point": "reject_count", "table": "holding", "address": 202,
         "type": "uint32", "unit_id": COUNTER},
        {"device": c, "point": "line_speed", "table": "holding", "address": 204,
         "type": "float32", "word_order": "little", "unit": "ppm", "unit_id": COUNTER},
        {"device": c, "point": "estop_ok", "table": "discrete_input", "address": 0,
         "unit_id": COUNTER},
        {"device": c, "point": "door_closed", "table": "discrete_input", "address": 1,
         "unit_id": COUNTER},
    ]
    return rows


def plant_map_csv(prefix: str = "plant1/utilities/line1") -> str:
    """:func:`plant_register_map` as a CSV file's text (the columns a map CSV has)."""
    columns = ["device", "point", "table", "address", "type", "byte_order", "word_order",
               "scale", "offset", "unit", "poll_group", "writable", "unit_id"]
    lines = [",".join(columns)]
    for row in plant_register_map(prefix):
        lines.append(",".join(str(row.get(c, "")).lower() if isinstance(row.get(c), bool)
                              else str(row.get(c, "")) for c in columns))
    return "\n".join(lines) + "\n"


@dataclass
class Plant:
    """A running simulated plant; ``port`` is the port it listens on."""

    server: ModbusTcpServer
    host: str
    port: int
    energy_kwh: float = 0.0
    packs: float = 0.0  # packs made, fractional between ticks
    speed: float = 0.0

    async def set_registers(self, unit: int, address: int, words: list[int],
                            holding: bool = True) -> None:
        await self.server.async_setValues(unit, _FC_HOLDING if holding else _FC_INPUT,
                                          address, words)

    async def step(self, t: float, dt: float) -> None:
        """Move every value on by ``dt`` seconds (``t`` seconds since start)."""
        s = self.server
        power = 7.5 + 1.5 * math.sin(t / 5)
        self.energy_kwh += power * dt / 3600
        meter = (encode(230 + 2 * math.sin(t), "float32")
                 + encode(12 + 3 * math.sin(t / 7), "float32") + encode(power, "float32")
                 + encode(self.energy_kwh, "float64") + encode(50 + 0.02 * math.sin(t), "float32")
                 + encode(0.92 + 0.03 * math.sin(t / 3), "int16", scale=0.001))
        await s.async_setValues(METER, _FC_INPUT, 0, meter)
        setpoint = (await s.async_getValues(VFD, 3, 100, 1))[0]
        run = bool((await s.async_getValues(VFD, 1, 0, 1))[0])
        target = float(setpoint) if run else 0.0
        self.speed += max(-300 * dt, min(300 * dt, target - self.speed))  # ramp 300 rpm/s
        current = 0.5 + 15 * (self.speed / 1500) ** 2
        await s.async_setValues(VFD, _FC_HOLDING, 101, [
            round(self.speed), round(current * 10), round(560 + 5 * math.sin(t))])
        await s.async_setValues(VFD, _FC_DISCRETE, 0, [self.speed > 1])
        line_speed = 120 + 10 * math.sin(t / 11)
        self.packs += line_speed * dt / 60
        good = int(self.packs) - int(self.packs) // 97
        await s.async_setValues(COUNTER, _FC_HOLDING, 200, encode(good, "uint32")
                                + encode(int(self.packs) // 97, "uint32")
                                + encode(line_speed, "float32", word_order="little"))
        await s.async_setValues(COUNTER, _FC_DISCRETE, 0, [True, True])


@contextlib.asynccontextmanager
async def _serving(devices: list[SimDevice], host: str, port: int) -> AsyncIterator[
        tuple[ModbusTcpServer, int]]:
    server = ModbusTcpServer(devices, address=(host, port))
    await server.serve_forever(background=True)
    try:
        listener = server.transport
        assert isinstance(listener, asyncio.Server)  # what serve_forever listens with
        yield server, int(listener.sockets[0].getsockname()[1])
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def serve_plant(host: str = "127.0.0.1", port: int = 0,
                      tick_s: float = 0.1) -> AsyncIterator[Plant]:
    """Serve the plant on ``host:port`` (0: a free port, see ``Plant.port``) until exit."""
    devices = [_device(METER, inputs=(0, 16)), _device(VFD, holding=(100, 8)),
               _device(COUNTER, holding=(200, 8))]
    async with _serving(devices, host, port) as (server, bound):
        plant = Plant(server, host, bound)
        await server.async_setValues(VFD, _FC_HOLDING, 100, [1200])
        await server.async_setValues(VFD, _FC_COIL, 0, [True])
        start = last = time.monotonic()
        await plant.step(0.0, 0.0)

        async def ticker() -> None:
            nonlocal last
            while True:
                await asyncio.sleep(tick_s)
                now = time.monotonic()
                await plant.step(now - start, now - last)
                last = now

        task = asyncio.create_task(ticker())
        try:
            yield plant
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def serve_bulk(host: str = "127.0.0.1", port: int = 0, units: int = 4,
                     registers: int = 10_000) -> AsyncIterator[tuple[ModbusTcpServer, int]]:
    """Many holding registers per unit (register ``a`` of unit ``u`` holds ``(a + u) % 65536``),
    for benchmarks."""
    devices = [SimDevice(u, simdata=(
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[(a + u) % 65536 for a in range(registers)],
                 datatype=DataType.REGISTERS)],
        [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
    )) for u in range(1, units + 1)]
    async with _serving(devices, host, port) as served:
        yield served
