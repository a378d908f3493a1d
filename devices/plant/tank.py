"""Open tanks: level from the mass balance of the flows in and out."""

from __future__ import annotations

import numpy as np

from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import TankSpec

__all__ = ["TankBank"]


class TankBank:
    """Every tank of the plant, stepped together."""

    def __init__(self, specs: list[TankSpec], table: SignalTable) -> None:
        names = [s.name for s in specs]
        self.names = names
        self.area = np.array([s.area for s in specs])
        self.height = np.array([s.height for s in specs])
        self.leak = np.zeros(len(specs))  # m3/h, set by leak faults
        table.add_units(specs)
        self.level = table.indices(names, "level")
        self.volume = table.indices(names, "volume")
        self.inflow = table.indices(names, "inflow")
        self.outflow = table.indices(names, "outflow")
        self.overflowing = table.indices(names, "overflowing")
        table.values[self.level] = [s.initial_level for s in specs]
        table.values[self.volume] = table.values[self.level] * self.area

    def position(self, name: str) -> int:
        return self.names.index(name)

    def step(self, dt: float, v: FloatArray, inflow: FloatArray, outflow: FloatArray) -> None:
        """Integrate levels from flows in m3/h (arrays aligned with the tanks)."""
        level = v[self.level]
        leak = np.where(level > 0, self.leak, 0.0)
        out = outflow + leak
        new_level = level + (inflow - out) * dt / 3600.0 / self.area
        spill = np.maximum(new_level - self.height, 0.0)
        new_level = np.clip(new_level, 0.0, self.height)
        v[self.level] = new_level
        v[self.volume] = new_level * self.area
        v[self.inflow] = inflow
        v[self.outflow] = out + spill * self.area * 3600.0 / dt
        v[self.overflowing] = spill > 0
