"""The plant: every process unit, stepped in causal order on one signal vector."""

from __future__ import annotations

import numpy as np

from devices.plant.conveyor import Conveyor
from devices.plant.motor import MotorBank
from devices.plant.pump import PumpBank
from devices.plant.signals import FloatArray, SignalTable
from devices.plant.tank import TankBank
from devices.plant.thermal import ThermalBank
from devices.plant.valve import ValveBank
from simlab.scenario.plant import (
    ConveyorSpec,
    MotorSpec,
    PlantSpec,
    PumpSpec,
    TankSpec,
    ThermalSpec,
    ValveSpec,
)

__all__ = ["Plant"]


class Plant:
    """All process units of a scenario. ``step(dt)`` is pure: no clock, no I/O.

    Order within a step: motors turn (and set the speed of pumps on their shafts), valves
    and pumps compute flows from the levels at the start of the step, tanks integrate
    them, thermal masses follow the new volumes, then conveyors move their items.
    """

    def __init__(self, spec: PlantSpec, rng: np.random.Generator) -> None:
        self.signals = SignalTable()
        units = spec.units
        tanks = [u for u in units if isinstance(u, TankSpec)]
        tank_names = [t.name for t in tanks]
        self.tanks = TankBank(tanks, self.signals)
        self.pumps = PumpBank(
            [u for u in units if isinstance(u, PumpSpec)], self.signals, tank_names
        )
        self.valves = ValveBank(
            [u for u in units if isinstance(u, ValveSpec)], self.signals, tank_names
        )
        self.thermals = ThermalBank(
            [u for u in units if isinstance(u, ThermalSpec)], self.signals, tank_names
        )
        self.motors = MotorBank([u for u in units if isinstance(u, MotorSpec)], self.signals)
        conveyor_specs = [u for u in units if isinstance(u, ConveyorSpec)]
        streams = rng.spawn(len(conveyor_specs)) if conveyor_specs else []
        self.conveyors = {
            c.name: Conveyor(c, self.signals, stream)
            for c, stream in zip(conveyor_specs, streams, strict=True)
        }
        self.unit_types = {u.name: u.type for u in units}
        self.shafts = _Shafts(self.motors, self.pumps)

    @property
    def values(self) -> FloatArray:
        return self.signals.values

    def index(self, signal: str) -> int:
        return self.signals.index[signal]

    def step(self, dt: float) -> None:
        v = self.signals.values
        n_tanks = len(self.tanks.names)
        levels = v[self.tanks.level]
        self.valves.step(dt, v, levels)
        self.motors.step(dt, v)
        self.shafts.couple(v)
        self.pumps.step(dt, v, levels)
        inflow = self.pumps.flows_into(n_tanks, v) + self.valves.flows_into(n_tanks, v)
        outflow = self.pumps.flows_out_of(n_tanks, v) + self.valves.flows_out_of(n_tanks, v)
        self.tanks.step(dt, v, inflow, outflow)
        self.thermals.step(dt, v, v[self.tanks.volume], inflow)
        for conveyor in self.conveyors.values():
            conveyor.step(dt, v)

    # --- plant faults -----------------------------------------------------------------

    def set_jam(self, unit: str, jammed: bool) -> None:
        self.conveyors[unit].jammed = jammed

    def set_leak(self, unit: str, flow: float) -> None:
        self.tanks.leak[self.tanks.names.index(unit)] = flow

    def set_bearing_wear(self, unit: str, rate: float) -> None:
        self.motors.wear_rate[self.motors.names.index(unit)] = rate

    def set_trip(self, unit: str, tripped: bool) -> None:
        if unit in self.pumps.names:
            self.pumps.tripped[self.pumps.names.index(unit)] = tripped
        elif unit in self.motors.names:
            self.motors.tripped[self.motors.names.index(unit)] = tripped
        else:
            self.conveyors[unit].tripped = tripped


class _Shafts:
    """Motor → pump couplings: a pump on a motor's shaft runs at the motor's speed."""

    def __init__(self, motors: MotorBank, pumps: PumpBank) -> None:
        pairs = [
            (m, pumps.names.index(pump))
            for m, pump in enumerate(motors.pump_names)
            if pump is not None
        ]
        motor_at = np.array([m for m, _ in pairs], dtype=np.intp)
        pump_at = np.array([p for _, p in pairs], dtype=np.intp)
        self.motor_speed = motors.speed[motor_at]
        self.motor_running = motors.running[motor_at]
        self.rated = motors.rated_speed[motor_at]
        self.pump_run = pumps.cmd_run[pump_at]
        self.pump_speed = pumps.cmd_speed[pump_at]

    def couple(self, v: FloatArray) -> None:
        v[self.pump_run] = v[self.motor_running]
        v[self.pump_speed] = v[self.motor_speed] / self.rated * 100.0
