"""Induction motors: speed ramp, current, winding temperature, vibration and bearing wear.

A deliberately simple condition-monitoring model: current rises with load and with the
friction of a worn bearing; the winding heats towards ``ambient + rise·(I/I_rated)²``
with a first-order lag; vibration velocity grows with speed² and with wear², which is what
ISO 10816-style monitoring watches for. Wear only grows while a bearing-wear fault acts.
"""

from __future__ import annotations

import numpy as np

from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import MotorSpec

__all__ = ["MotorBank"]

INRUSH = 2.5  # current during acceleration, × rated
WEAR_CURRENT = 0.15  # extra current at full wear, × rated
WEAR_HEAT = 0.5  # extra temperature rise at full wear, × rated rise


class MotorBank:
    """Every motor of the plant, stepped together."""

    def __init__(self, specs: list[MotorSpec], table: SignalTable) -> None:
        names = [s.name for s in specs]
        self.names = names
        self.rated_speed = np.array([s.rated_speed for s in specs])
        self.rated_current = np.array([s.rated_current for s in specs])
        self.no_load = np.array([s.no_load_current for s in specs])
        self.load = np.array([s.load for s in specs]) / 100.0
        self.accel = np.array(
            [s.rated_speed / s.accel_time if s.accel_time > 0 else np.inf for s in specs]
        )
        self.tau = np.array([s.thermal_time_constant for s in specs])
        self.rise = np.array([s.rated_temperature_rise for s in specs])
        self.ambient = np.array([s.ambient for s in specs])
        self.base_vibration = np.array([s.base_vibration for s in specs])
        self.wear_vibration = np.array([s.wear_vibration for s in specs])
        self.wear_rate = np.zeros(len(specs))  # per hour, set by bearing-wear faults
        self.tripped = np.zeros(len(specs), dtype=bool)
        self.pump_names = [s.pump for s in specs]
        table.add_units(specs)
        self.cmd_run = table.indices(names, "cmd_run")
        self.cmd_speed = table.indices(names, "cmd_speed")
        self.running = table.indices(names, "running")
        self.speed = table.indices(names, "speed")
        self.current = table.indices(names, "current")
        self.winding_temperature = table.indices(names, "winding_temperature")
        self.vibration = table.indices(names, "vibration")
        self.bearing_wear = table.indices(names, "bearing_wear")
        self.run_hours = table.indices(names, "run_hours")
        table.values[self.cmd_run] = [s.initial_run for s in specs]
        table.values[self.cmd_speed] = [s.initial_speed for s in specs]
        table.values[self.winding_temperature] = self.ambient
        table.values[self.bearing_wear] = [s.initial_wear for s in specs]

    def step(self, dt: float, v: FloatArray) -> None:
        run = (v[self.cmd_run] > 0.5) & ~self.tripped
        target = np.where(
            run, np.clip(v[self.cmd_speed], 0.0, 100.0) / 100.0 * self.rated_speed, 0.0
        )
        speed = v[self.speed]
        change = np.clip(target - speed, -self.accel * dt, self.accel * dt)
        speed = speed + change
        turning = speed > 1.0
        relative = speed / self.rated_speed
        wear = np.minimum(
            v[self.bearing_wear] + np.where(turning, self.wear_rate * dt / 3600.0, 0.0), 1.0
        )
        steady = self.rated_current * (
            self.no_load + (1.0 - self.no_load) * self.load * relative + WEAR_CURRENT * wear
        )
        current = np.where(change > 0, INRUSH * self.rated_current, np.where(turning, steady, 0.0))
        heat_target = self.ambient + self.rise * (
            (current / self.rated_current) ** 2 + WEAR_HEAT * wear * relative
        )
        temperature = v[self.winding_temperature]
        temperature = temperature + (heat_target - temperature) * (1.0 - np.exp(-dt / self.tau))
        vibration = relative**2 * (self.base_vibration + self.wear_vibration * wear**2)
        v[self.speed] = speed
        v[self.running] = turning
        v[self.current] = current
        v[self.winding_temperature] = temperature
        v[self.vibration] = vibration
        v[self.bearing_wear] = wear
        v[self.run_hours] += np.where(turning, dt / 3600.0, 0.0)
