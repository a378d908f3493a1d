"""Thermal masses: heater power in, losses to ambient out, and mixing with what flows in.

``m·cp·dT/dt = P_heater − UA·(T − T_amb) + ṁ_in·cp·(T_in − T)``; with a tank the mass is the
water it holds (at least 10 kg, so an empty tank does not divide by zero).
"""

from __future__ import annotations

import numpy as np

from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import ThermalSpec

__all__ = ["ThermalBank"]

WATER_DENSITY = 1000.0  # kg/m3
MIN_MASS = 10.0  # kg


class ThermalBank:
    """Every thermal mass of the plant, stepped together."""

    def __init__(self, specs: list[ThermalSpec], table: SignalTable, tanks: list[str]) -> None:
        names = [s.name for s in specs]
        self.names = names
        self.tank = np.array([tanks.index(s.tank) if s.tank else -1 for s in specs], dtype=np.intp)
        self.mass = np.array([s.mass for s in specs])
        self.cp = np.array([s.specific_heat for s in specs])
        self.power = np.array([s.heater_power * 1000.0 for s in specs])
        self.ua = np.array([s.loss_coefficient for s in specs])
        self.ambient = np.array([s.ambient for s in specs])
        self.inlet = np.array([s.inlet_temperature for s in specs])
        table.add_units(specs)
        self.cmd_heater = table.indices(names, "cmd_heater")
        self.temperature = table.indices(names, "temperature")
        self.heater_power = table.indices(names, "heater_power")
        table.values[self.temperature] = [s.initial_temperature for s in specs]

    def step(self, dt: float, v: FloatArray, volumes: FloatArray, inflows: FloatArray) -> None:
        """Advance temperatures; ``volumes`` (m3) and ``inflows`` (m3/h) are per tank."""
        has_tank = self.tank >= 0
        where = np.maximum(self.tank, 0)
        tank_volume = volumes[where] if len(volumes) else np.zeros(len(self.tank))
        tank_inflow = inflows[where] if len(inflows) else np.zeros(len(self.tank))
        mass = np.where(has_tank, np.maximum(tank_volume * WATER_DENSITY, MIN_MASS), self.mass)
        mass_flow = np.where(has_tank, tank_inflow / 3600.0 * WATER_DENSITY, 0.0)
        temperature = v[self.temperature]
        heat = self.power * np.clip(v[self.cmd_heater], 0.0, 100.0) / 100.0
        d_temperature = (
            heat
            - self.ua * (temperature - self.ambient)
            + mass_flow * self.cp * (self.inlet - temperature)
        ) / (mass * self.cp)
        v[self.temperature] = temperature + d_temperature * dt
        v[self.heater_power] = heat / 1000.0
