"""Control valves draining tanks: position moves at a finite rate, flow = cv·opening·√level."""

from __future__ import annotations

import numpy as np

from devices.plant.flows import levels_at, sum_by_tank
from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import ValveSpec

__all__ = ["ValveBank"]


class ValveBank:
    """Every valve of the plant, stepped together."""

    def __init__(self, specs: list[ValveSpec], table: SignalTable, tanks: list[str]) -> None:
        names = [s.name for s in specs]
        self.names = names
        self.cv = np.array([s.cv for s in specs])
        self.rate = np.array(
            [100.0 / s.travel_time if s.travel_time > 0 else np.inf for s in specs]
        )
        self.tank = np.array([tanks.index(s.tank) for s in specs], dtype=np.intp)
        self.to = np.array([tanks.index(s.to) if s.to else -1 for s in specs], dtype=np.intp)
        table.add_units(specs)
        self.cmd_position = table.indices(names, "cmd_position")
        self.position = table.indices(names, "position")
        self.flow = table.indices(names, "flow")
        table.values[self.cmd_position] = [s.initial_position for s in specs]
        table.values[self.position] = [s.initial_position for s in specs]

    def step(self, dt: float, v: FloatArray, tank_levels: FloatArray) -> None:
        target = np.clip(v[self.cmd_position], 0.0, 100.0)
        position = v[self.position]
        position = position + np.clip(target - position, -self.rate * dt, self.rate * dt)
        level = np.maximum(levels_at(self.tank, tank_levels), 0.0)
        v[self.position] = position
        v[self.flow] = self.cv * position / 100.0 * np.sqrt(level)

    def flows_into(self, n_tanks: int, v: FloatArray) -> FloatArray:
        return sum_by_tank(self.to, v[self.flow], n_tanks)

    def flows_out_of(self, n_tanks: int, v: FloatArray) -> FloatArray:
        return sum_by_tank(self.tank, v[self.flow], n_tanks)
