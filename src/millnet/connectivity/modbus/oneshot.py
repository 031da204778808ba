"""One poll of a whole register map, outside any pipeline (commissioning: ``millnet modbus
read``): the same planner and codec as the adapter, each point with its value or what failed."""

from __future__ import annotations

from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from millnet.connectivity.modbus.adapter import exception_name, read_table
from millnet.connectivity.modbus.codec import decode_raw, registers_to_bytes, scaled
from millnet.connectivity.modbus.plan import MAX_BITS, PlanItem, plan_reads
from millnet.connectivity.modbus.spec import BIT_TABLES, ModbusSpec, RegisterSpec
from millnet.errors import MillnetError


@dataclass(frozen=True, slots=True)
class PointReading:
    register: RegisterSpec
    value: float | None  # None when unread
    error: str = ""


async def read_once(spec: ModbusSpec) -> list[PointReading]:
    """Connect, read every register of the map once (coalesced), disconnect."""
    client = AsyncModbusTcpClient(spec.host, port=spec.port, timeout=spec.timeout_s,
                                  retries=0, reconnect_delay=0)
    if not await client.connect():
        raise MillnetError(f"cannot connect to {spec.host}:{spec.port}")
    regs = spec.register_map
    keys: dict[tuple[int, str], list[PlanItem]] = {}
    for i, reg in enumerate(regs):
        keys.setdefault((spec.unit_of(reg), reg.table), []).append(
            PlanItem(i, reg.address, reg.width))
    out: dict[int, PointReading] = {}
    try:
        for (unit, table), items in sorted(keys.items()):
            bits = table in BIT_TABLES
            plan = plan_reads(items, min(spec.max_bits_per_read, MAX_BITS) if bits
                              else spec.max_registers_per_read,
                              spec.max_gap_bits if bits else spec.max_gap_registers)
            for req in plan:
                try:
                    answer = await read_table(client, unit, table, req.start, req.count)
                except ModbusException as exc:
                    error = str(exc)
                else:
                    error = exception_name(answer) if answer.isError() else ""
                for it in req.items:
                    reg = regs[it.key]
                    if error:
                        out[it.key] = PointReading(reg, None, error)
                        continue
                    off = it.address - req.start
                    if bits:
                        value = 1.0 if answer.bits[off] else 0.0
                    else:
                        value = scaled(decode_raw(registers_to_bytes(answer.registers), off,
                                                  reg.value_type, reg.byte_order,
                                                  reg.word_order), reg.scale, reg.offset)
                    out[it.key] = PointReading(reg, value)
    finally:
        client.close()
    return [out[i] for i in range(len(regs))]
