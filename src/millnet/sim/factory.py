"""Plant layout and signal models of the simulated factory.

Every machine runs a small state machine (running, idle, setup, fault) and its signals follow
the state: motor current and power track load, temperatures approach a state-dependent set point
with first-order lag, vibration grows slowly with wear, part counters advance with the cycle time.
Values are rounded to a sensor's resolution, as real instruments report them.

Incidents, for the demo (opt-in, so that other users of the model see the same signals):
``warm`` starts the plant at its running temperatures (it ran before the simulation started),
and the CNCs of ``bad_pumps`` (indices in the plant) have a coolant pump that fails now and
then (those of ``pumps_out`` are out from the start). While it is out the coolant pressure
drops to a quarter and the running spindle heads for 90 degC; at 85 degC the machine's thermal
protection trips it into FAULT, where maintenance repairs the pump.

Everything is vectorised over all points of the plant: one ``step`` is a handful of numpy
operations whatever the size of the plant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from millnet.model import DataType


class MachineState(IntEnum):
    STOPPED = 0
    RUNNING = 1
    IDLE = 2
    SETUP = 3
    FAULT = 4


# (name, datatype, unit, low, high, behaviour, level when running, resolution)
# behaviour: "load" follows the running load, "temp" lags towards a set point, "vib" wears,
# "counter" counts parts, "state" is the machine state, "flag" is a boolean alarm.
_SIGNALS: dict[str, list[tuple[str, DataType, str, float, float, str, float, float]]] = {
    "cnc": [
        ("Spindle/Current", DataType.FLOAT, "A", 0, 60, "load", 28.0, 0.1),
        ("Spindle/Speed", DataType.FLOAT, "rpm", 0, 12000, "load", 8000.0, 1.0),
        ("Spindle/Temperature", DataType.FLOAT, "degC", 0, 120, "temp", 55.0, 0.1),
        ("Spindle/Vibration", DataType.FLOAT, "mm/s", 0, 20, "vib", 2.2, 0.01),
        ("Axis/X/Current", DataType.FLOAT, "A", 0, 20, "load", 6.0, 0.1),
        ("Axis/Y/Current", DataType.FLOAT, "A", 0, 20, "load", 5.5, 0.1),
        ("Axis/Z/Current", DataType.FLOAT, "A", 0, 20, "load", 7.5, 0.1),
        ("Coolant/Temperature", DataType.FLOAT, "degC", 0, 60, "temp", 24.0, 0.1),
        ("Coolant/Pressure", DataType.FLOAT, "bar", 0, 80, "load", 45.0, 0.1),
        ("Hydraulic/Pressure", DataType.FLOAT, "bar", 0, 250, "load", 160.0, 0.5),
        ("Power/Active", DataType.FLOAT, "kW", 0, 60, "load", 22.0, 0.01),
        ("Cabinet/Temperature", DataType.FLOAT, "degC", 0, 70, "temp", 38.0, 0.1),
        ("Feed/Override", DataType.FLOAT, "%", 0, 150, "load", 100.0, 1.0),
        ("Parts/Good", DataType.INT64, "pcs", 0, 1e9, "counter", 1.0, 1.0),
        ("Parts/Scrap", DataType.INT64, "pcs", 0, 1e9, "counter", 0.02, 1.0),
        ("State", DataType.INT32, "", 0, 4, "state", 1.0, 1.0),
        ("Alarm/Active", DataType.BOOLEAN, "", 0, 1, "flag", 0.0, 1.0),
    ],
    "press": [
        ("Motor/Current", DataType.FLOAT, "A", 0, 200, "load", 95.0, 0.1),
        ("Motor/Temperature", DataType.FLOAT, "degC", 0, 130, "temp", 68.0, 0.1),
        ("Ram/Force", DataType.FLOAT, "kN", 0, 4000, "load", 2500.0, 1.0),
        ("Ram/Position", DataType.FLOAT, "mm", 0, 400, "load", 180.0, 0.01),
        ("Hydraulic/Pressure", DataType.FLOAT, "bar", 0, 300, "load", 210.0, 0.5),
        ("Hydraulic/OilTemperature", DataType.FLOAT, "degC", 0, 90, "temp", 48.0, 0.1),
        ("Frame/Vibration", DataType.FLOAT, "mm/s", 0, 30, "vib", 4.5, 0.01),
        ("Die/Temperature", DataType.FLOAT, "degC", 0, 250, "temp", 140.0, 0.5),
        ("Power/Active", DataType.FLOAT, "kW", 0, 150, "load", 75.0, 0.01),
        ("Lube/Pressure", DataType.FLOAT, "bar", 0, 10, "load", 4.2, 0.01),
        ("Strokes/Rate", DataType.FLOAT, "spm", 0, 60, "load", 32.0, 0.1),
        ("Cabinet/Temperature", DataType.FLOAT, "degC", 0, 70, "temp", 36.0, 0.1),
        ("Parts/Good", DataType.INT64, "pcs", 0, 1e9, "counter", 8.0, 1.0),
        ("Parts/Scrap", DataType.INT64, "pcs", 0, 1e9, "counter", 0.1, 1.0),
        ("Strokes/Total", DataType.INT64, "", 0, 1e12, "counter", 8.1, 1.0),
        ("State", DataType.INT32, "", 0, 4, "state", 1.0, 1.0),
        ("Alarm/Active", DataType.BOOLEAN, "", 0, 1, "flag", 0.0, 1.0),
    ],
}
KINDS = tuple(_SIGNALS)

COOLANT_FAILURE_PER_S = 1 / 300  # a repaired bad pump fails again after 5 min on average
COOLANT_LEFT = 0.25  # share of the coolant pressure left while the pump is out
OVERHEAT_K = 35.0  # how much hotter the spindle runs without coolant
TRIP_DEGC = 85.0  # the spindle temperature at which the thermal protection stops a CNC


@dataclass(frozen=True, slots=True)
class PointDef:
    name: str
    datatype: DataType
    unit: str
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Machine:
    site: str
    area: str
    line: str
    name: str
    kind: str

    @property
    def points(self) -> list[PointDef]:
        return [PointDef(n, dt, u, lo, hi) for n, dt, u, lo, hi, *_ in _SIGNALS[self.kind]]


def plant_layout(sites: int = 2, lines_per_site: int = 3, machines_per_line: int = 10,
                 ) -> list[Machine]:
    """The default plant: 2 sites x 3 lines x 10 machines = 60 machines, 1,020 points."""
    machines = []
    for s in range(sites):
        site = ("Suzhou", "Wuxi", "Ningbo", "Foshan")[s % 4] + (str(s // 4) if s >= 4 else "")
        for ln in range(lines_per_site):
            area = "Machining" if ln % 2 == 0 else "Stamping"
            kind = "cnc" if area == "Machining" else "press"
            line = f"L{ln + 1}"
            for m in range(machines_per_line):
                machines.append(Machine(site, area, line, f"{kind.upper()}-{ln + 1}{m + 1:02d}",
                                        kind))
    return machines


class FactorySignals:
    """Signal state of all machines; ``step(dt)`` advances time and returns every value."""

    def __init__(self, machines: list[Machine], seed: int = 7, *, warm: bool = False,
                 bad_pumps: Sequence[int] = (), pumps_out: Sequence[int] = ()) -> None:
        self.machines = machines
        self._rng = np.random.default_rng(seed)
        rows = [sig for m in machines for sig in _SIGNALS[m.kind]]
        self.machine_of = np.repeat(np.arange(len(machines)),
                                    [len(_SIGNALS[m.kind]) for m in machines])
        self._behaviour = np.array([r[5] for r in rows])
        self._level = np.array([r[6] for r in rows], dtype=np.float64)
        self._resolution = np.array([r[7] for r in rows], dtype=np.float64)
        self._high = np.array([r[4] for r in rows], dtype=np.float64)
        self.state = np.full(len(machines), MachineState.RUNNING, dtype=np.int64)
        self.wear = self._rng.uniform(0.9, 1.1, len(machines))
        ambient = np.where(self._behaviour == "temp", 22.0, 0.0)
        start = np.where(self._behaviour == "temp", self._level, ambient) if warm else ambient
        self.values = np.where(self._behaviour == "temp", start, 0.0)
        self._fraction = np.zeros(len(rows))
        names = np.array([r[0] for r in rows])
        self._bad_pump = np.zeros(len(machines), dtype=np.bool_)
        self._bad_pump[[*bad_pumps, *pumps_out]] = True
        self.coolant_out = np.zeros(len(machines), dtype=np.bool_)  # pumps out now
        self.coolant_out[list(pumps_out)] = True
        self._spindle = names == "Spindle/Temperature"
        self._coolant = names == "Coolant/Pressure"

    def _advance_states(self, dt: float) -> None:
        r = self._rng.random(len(self.state))
        s = self.state
        to_idle = (s == MachineState.RUNNING) & (r < 0.01 * dt)
        to_fault = (s == MachineState.RUNNING) & (r > 1 - 0.002 * dt)
        back = (s != MachineState.RUNNING) & (r < 0.08 * dt)
        s[to_idle] = MachineState.IDLE
        s[to_fault] = MachineState.FAULT
        s[back] = MachineState.RUNNING
        self.wear += dt * 1e-5
        if self._bad_pump.any():  # no extra draws otherwise: the same signals for a seed
            self._coolant_incidents(dt)

    def _coolant_incidents(self, dt: float) -> None:
        s = self.state
        hot = np.zeros(len(s), dtype=np.bool_)
        hot[self.machine_of[self._spindle]] = self.values[self._spindle] >= TRIP_DEGC
        trip = self.coolant_out & hot & (s == MachineState.RUNNING)
        s[trip] = MachineState.FAULT
        self.coolant_out &= s != MachineState.FAULT  # repaired while the machine is down
        fails = self._rng.random(len(s)) < COOLANT_FAILURE_PER_S * dt
        self.coolant_out |= self._bad_pump & fails & (s == MachineState.RUNNING)

    def step(self, dt: float = 1.0) -> npt.NDArray[np.float64]:
        """Advance ``dt`` seconds; returns the current value of every point (plant order)."""
        self._advance_states(dt)
        running = (self.state == MachineState.RUNNING)[self.machine_of]
        b, lvl = self._behaviour, self._level
        noise = self._rng.normal(0.0, 1.0, len(lvl))
        v = self.values
        load = b == "load"
        v[load] = np.where(running[load], lvl[load] * (1 + 0.03 * noise[load]), 0.0)
        out = self.coolant_out[self.machine_of]
        v[self._coolant & out] *= COOLANT_LEFT
        temp = b == "temp"
        extra = np.where((self._spindle & out)[temp], OVERHEAT_K, 0.0)
        target = np.where(running[temp], lvl[temp] + extra, 22.0 + 0.3 * (lvl[temp] - 22.0))
        v[temp] += (target - v[temp]) * (1 - np.exp(-dt / 120.0)) + 0.05 * noise[temp]
        vib = b == "vib"
        wear = self.wear[self.machine_of[vib]]
        v[vib] = np.where(running[vib], lvl[vib] * wear * (1 + 0.08 * noise[vib]), 0.05)
        cnt = b == "counter"
        self._fraction[cnt] += np.where(running[cnt], lvl[cnt] * dt / 10.0, 0.0)
        whole = np.floor(self._fraction[cnt])
        v[cnt] += whole
        self._fraction[cnt] -= whole
        st = b == "state"
        v[st] = self.state[self.machine_of[st]]
        flag = b == "flag"
        v[flag] = (self.state[self.machine_of[flag]] == MachineState.FAULT).astype(np.float64)
        rounded = np.round(v / self._resolution) * self._resolution
        return np.clip(rounded, 0.0, self._high)
