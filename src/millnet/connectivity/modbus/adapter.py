"""The Modbus TCP adapter: poll groups on their own intervals into a :class:`FieldSink`.

One TCP connection per source (a device, or a gateway with several unit ids behind it). Each
poll group runs on its own clock; a poll still running when the next tick is due makes that
tick skipped and counted (``skipped_polls``), never queued. Every poll first awaits
``sink.capacity()`` (a full pipeline delays the poll, nothing is dropped) and stamps all its
samples with one time taken when it starts. A Modbus exception answer makes the points of that
read BAD (NaN) at the poll's time and the source DEGRADED, naming the exception; a unit that
does not answer is retried with exponential backoff while the other units go on; a lost
connection makes the source DOWN and it reconnects with exponential backoff up to a cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from millnet.connectivity.adapter import FieldSink, Health, HealthState, WriteRequest, WriteResult
from millnet.connectivity.modbus.codec import decode_raw, encode, registers_to_bytes, scaled
from millnet.connectivity.modbus.plan import MAX_BITS, PlanItem, plan_reads
from millnet.connectivity.modbus.points import point_spec
from millnet.connectivity.modbus.spec import BIT_TABLES, ModbusSpec, RegisterSpec
from millnet.errors import RejectedMessage
from millnet.ingest.binder import DevicePath

log = logging.getLogger("millnet.connectivity.modbus")


class ConnectionLost(Exception):
    """The TCP connection to the server is gone: reconnect."""


@dataclass(frozen=True, slots=True)
class _Slot:
    series_id: int
    offset: int  # in the read's registers or bits
    register: RegisterSpec


@dataclass(frozen=True, slots=True)
class _Read:  # one planned read request
    unit: int
    table: str
    start: int
    count: int
    slots: tuple[_Slot, ...]

    @property
    def label(self) -> str:
        return f"unit {self.unit} {self.table} {self.start}..{self.start + self.count - 1}"


@dataclass
class _UnitBackoff:
    """A unit that stopped answering is asked again after ``delay``, doubling to a cap."""

    delay: float = 0.0
    retry_at: float = 0.0


@dataclass
class _Failures:
    reads: dict[str, str] = field(default_factory=dict)  # read label -> what failed


def exception_name(response: ModbusPDU) -> str:
    code = response.exception_code
    try:
        return f"{ExcCodes(code).name} ({code})"
    except ValueError:
        return f"exception {code}"


async def read_table(client: AsyncModbusTcpClient, unit: int, table: str, start: int,
                     count: int) -> ModbusPDU:
    """One read request (function 1, 2, 3 or 4 by ``table``)."""
    if table == "holding":
        return await client.read_holding_registers(start, count=count, device_id=unit)
    if table == "input":
        return await client.read_input_registers(start, count=count, device_id=unit)
    if table == "coil":
        return await client.read_coils(start, count=count, device_id=unit)
    return await client.read_discrete_inputs(start, count=count, device_id=unit)


def _value(register: RegisterSpec, registers: Sequence[int] | None,
           bits: Sequence[bool] | None) -> float | int | bool:
    """The engineering value of ``register`` from a read starting at its address."""
    if register.table in BIT_TABLES:
        return bool(bits[0]) if bits else False
    raw = decode_raw(registers_to_bytes(registers or []), 0, register.value_type,
                     register.byte_order, register.word_order)
    if register.scale == 1.0 and register.offset == 0.0:
        return raw
    return scaled(raw, register.scale, register.offset)


class ModbusAdapter:
    """Implements :class:`~millnet.connectivity.adapter.Adapter` and ``Writable``."""

    kind = "modbus"

    def __init__(self, spec: ModbusSpec, sink: FieldSink) -> None:
        self.name = spec.name
        self.spec = spec
        self._sink = sink
        self._health = Health()
        self._client: AsyncModbusTcpClient | None = None
        self._by_point: dict[tuple[DevicePath, str], RegisterSpec] = {
            (r.device_path, r.point): r for r in spec.register_map}
        self._plans: dict[str, list[_Read]] = {}
        self._units: dict[int, _UnitBackoff] = {}
        self._failures = _Failures()

    def health(self) -> Health:
        return self._health

    # -- binding and planning ------------------------------------------------------------------
    async def _bind(self) -> dict[int, int]:
        """Register index -> series id, for the points the registry accepted."""
        by_device: dict[DevicePath, list[int]] = {}
        for i, reg in enumerate(self.spec.register_map):
            by_device.setdefault(reg.device_path, []).append(i)
        series: dict[int, int] = {}
        for device, indexes in by_device.items():
            regs = [self.spec.register_map[i] for i in indexes]
            try:
                ids = await self._sink.bind(device, [point_spec(r) for r in regs])
            except RejectedMessage as exc:
                self._sink.reject(exc.reason, str(exc))
                continue
            for i, reg in zip(indexes, regs, strict=True):
                if reg.point in ids:
                    series[i] = ids[reg.point]
        return series

    def _plan(self, series: dict[int, int]) -> dict[str, list[_Read]]:
        spec = self.spec
        groups: dict[tuple[str, int, str], list[PlanItem]] = {}
        for i, reg in enumerate(spec.register_map):
            if i in series:
                key = (reg.poll_group, spec.unit_of(reg), reg.table)
                groups.setdefault(key, []).append(PlanItem(i, reg.address, reg.width))
        plans: dict[str, list[_Read]] = {g.name: [] for g in spec.poll_groups}
        for (group, unit, table), items in sorted(groups.items()):
            bits = table in BIT_TABLES
            requests = plan_reads(
                items, min(spec.max_bits_per_read, MAX_BITS) if bits
                else spec.max_registers_per_read,
                spec.max_gap_bits if bits else spec.max_gap_registers)
            for req in requests:
                slots = tuple(_Slot(series[it.key], it.address - req.start,
                                    spec.register_map[it.key]) for it in req.items)
                plans[group].append(_Read(unit, table, req.start, req.count, slots))
        return plans

    # -- running ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Bind, connect, poll; reconnect with exponential backoff; until cancelled."""
        spec = self.spec
        try:
            self._plans = self._plan(await self._bind())
            delay = spec.backoff_initial_s
            while True:
                client = AsyncModbusTcpClient(spec.host, port=spec.port, timeout=spec.timeout_s,
                                              retries=0, reconnect_delay=0)
                try:
                    if await client.connect():
                        self._client = client
                        self._health.count("connects")
                        self._set_state()
                        delay = spec.backoff_initial_s
                        await self._poll_groups(client)
                    detail = f"cannot connect to {spec.host}:{spec.port}"
                except* ConnectionLost as group:
                    detail = f"connection to {spec.host}:{spec.port} lost: {group.exceptions[0]}"
                finally:
                    self._client = None
                    client.close()
                self._health.count("disconnects")
                self._health.enter(HealthState.DOWN, f"{detail}; retrying in {delay:g} s")
                log.warning("%s: %s; retrying in %g s", self.name, detail, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, spec.backoff_max_s)
        finally:
            self._health.enter(HealthState.STOPPED)

    async def _poll_groups(self, client: AsyncModbusTcpClient) -> None:
        intervals = self.spec.group_interval_s()
        async with asyncio.TaskGroup() as tg:
            for group, reads in self._plans.items():
                if reads:
                    tg.create_task(self._clock(tg, client, intervals[group], reads))

    async def _clock(self, tg: asyncio.TaskGroup, client: AsyncModbusTcpClient,
                     interval: float, reads: list[_Read]) -> None:
        """Start a poll every ``interval``; a tick due while the last poll runs is skipped."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tick = 0
        running: asyncio.Task[None] | None = None
        while True:
            if running is None or running.done():
                running = tg.create_task(self._poll(client, reads))
            else:
                self._health.count("skipped_polls")
            tick += 1
            now = loop.time()
            behind = int((now - t0) / interval) - tick
            if behind > 0:  # the loop itself was late: those ticks were skipped too
                self._health.count("skipped_polls", behind)
                tick += behind
            await asyncio.sleep(t0 + tick * interval - now)

    async def _poll(self, client: AsyncModbusTcpClient, reads: list[_Read]) -> None:
        await self._sink.capacity()
        ts_ns = time.time_ns()
        emitted = 0
        loop = asyncio.get_running_loop()
        for read in reads:
            backoff = self._units.get(read.unit)
            if backoff is not None and loop.time() < backoff.retry_at:
                continue
            if not client.connected:
                raise ConnectionLost("not connected")
            count = await self._poll_one(client, read, ts_ns)
            self._sink.done(count)  # at once: a poll cancelled later leaves no samples uncounted
            emitted += count
        self._health.count("polls")
        if emitted:
            self._health.last_data_at = time.time()
        self._set_state()

    async def _poll_one(self, client: AsyncModbusTcpClient, read: _Read, ts_ns: int) -> int:
        sink = self._sink
        try:
            response = await read_table(client, read.unit, read.table, read.start,
                                        read.count)
        except ConnectionException as exc:
            raise ConnectionLost(str(exc)) from None
        except ModbusException as exc:  # no answer in time
            if not client.connected:
                raise ConnectionLost(str(exc)) from None
            self._unit_failed(read.unit)
            return self._bad(read, ts_ns, f"no answer within {self.spec.timeout_s:g} s")
        if response.isError():
            return self._bad(read, ts_ns, exception_name(response))
        self._units.pop(read.unit, None)
        self._failures.reads.pop(read.label, None)
        if read.table in BIT_TABLES:
            bits = response.bits
            for slot in read.slots:
                sink.emit(slot.series_id, ts_ns, 1.0 if bits[slot.offset] else 0.0)
        else:
            data = registers_to_bytes(response.registers)
            for slot in read.slots:
                reg = slot.register
                sink.emit(slot.series_id, ts_ns, scaled(
                    decode_raw(data, slot.offset, reg.value_type, reg.byte_order,
                               reg.word_order), reg.scale, reg.offset))
        return len(read.slots)

    def _bad(self, read: _Read, ts_ns: int, why: str) -> int:
        self._health.count("errors")
        self._failures.reads[read.label] = why
        self._sink.emit_bad([slot.series_id for slot in read.slots], ts_ns)
        return len(read.slots)

    def _unit_failed(self, unit: int) -> None:
        spec = self.spec
        backoff = self._units.setdefault(unit, _UnitBackoff())
        backoff.delay = min(max(backoff.delay * 2, spec.backoff_initial_s), spec.backoff_max_s)
        backoff.retry_at = asyncio.get_running_loop().time() + backoff.delay

    def _set_state(self) -> None:
        failing = self._failures.reads
        if failing:
            detail = "; ".join(f"{label}: {why}" for label, why in list(failing.items())[:5])
            more = len(failing) - 5
            self._health.enter(HealthState.DEGRADED,
                               detail + (f"; and {more} more" if more > 0 else ""))
        else:
            self._health.enter(HealthState.UP)

    # -- writing ---------------------------------------------------------------------------------
    def writable(self, device: DevicePath, point: str) -> bool:
        reg = self._by_point.get((tuple(device), point))  # type: ignore[arg-type]
        return reg is not None and reg.writable

    async def write(self, request: WriteRequest) -> WriteResult:
        """Encode per the map, write (function 5, 6 or 16), read back."""
        reg = self._by_point.get((tuple(request.device), request.point))  # type: ignore[arg-type]
        where = f"{'/'.join(request.device)}/{request.point}"
        if reg is None:
            return WriteResult(False, f"{where}: not a point of source {self.name}")
        if not reg.writable:
            return WriteResult(False, f"{where}: not writable ({reg.table} {reg.address})")
        if isinstance(request.value, str):
            return WriteResult(False, f"{where}: a Modbus point takes a number, not text")
        try:
            words = encode(request.value, reg.value_type, reg.byte_order, reg.word_order,
                           reg.scale, reg.offset)
        except ValueError as exc:
            return WriteResult(False, f"{where}: {exc}")
        client = self._client
        if client is None or not client.connected:
            return WriteResult(False, f"{where}: not connected to {self.spec.host}")
        unit = self.spec.unit_of(reg)
        try:
            async with asyncio.timeout(request.timeout_s):
                if reg.table == "coil":
                    answer = await client.write_coil(reg.address, bool(words[0]),
                                                     device_id=unit)
                elif len(words) == 1:
                    answer = await client.write_register(reg.address, words[0], device_id=unit)
                else:
                    answer = await client.write_registers(reg.address, words, device_id=unit)
                if answer.isError():
                    return WriteResult(False, f"{where}: {exception_name(answer)}")
                back = await read_table(client, unit, reg.table, reg.address, reg.width)
        except TimeoutError:
            return WriteResult(False, f"{where}: no answer within {request.timeout_s:g} s")
        except ModbusException as exc:
            return WriteResult(False, f"{where}: {exc}")
        if back.isError():
            return WriteResult(True, f"read-back failed: {exception_name(back)}")
        self._health.count("writes")
        return WriteResult(True, "", _value(reg, back.registers, back.bits))
