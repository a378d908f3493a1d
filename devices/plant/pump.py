"""Centrifugal pumps: speed ramps to its command; flow from the pump curve against the head.

Pump curve by the affinity laws: ``H = H0·n² − k·Q²`` with ``k = H0 / Qmax²``, so at relative
speed ``n`` against head ``H`` the flow is ``Q = Qmax·√(n² − H/H0)`` (zero when the pump cannot
overcome the head). The head is the static lift plus the level of the tank it fills.
"""

from __future__ import annotations

import numpy as np

from devices.plant.flows import levels_at, sum_by_tank
from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import PumpSpec

__all__ = ["PumpBank"]


class PumpBank:
    """Every pump of the plant, stepped together."""

    def __init__(self, specs: list[PumpSpec], table: SignalTable, tanks: list[str]) -> None:
        names = [s.name for s in specs]
        self.names = names
        self.max_flow = np.array([s.max_flow for s in specs])
        self.shutoff_head = np.array([s.shutoff_head for s in specs])
        self.static_head = np.array([s.static_head for s in specs])
        self.ramp = np.array([100.0 / s.spin_time if s.spin_time > 0 else np.inf for s in specs])
        self.tripped = np.zeros(len(specs), dtype=bool)
        self.source = np.array(
            [tanks.index(s.source) if s.source else -1 for s in specs], dtype=np.intp
        )
        self.to = np.array([tanks.index(s.to) if s.to else -1 for s in specs], dtype=np.intp)
        table.add_units(specs)
        self.cmd_run = table.indices(names, "cmd_run")
        self.cmd_speed = table.indices(names, "cmd_speed")
        self.running = table.indices(names, "running")
        self.speed = table.indices(names, "speed")
        self.flow = table.indices(names, "flow")
        self.run_hours = table.indices(names, "run_hours")
        table.values[self.cmd_run] = [s.initial_run for s in specs]
        table.values[self.cmd_speed] = [s.initial_speed for s in specs]

    def step(self, dt: float, v: FloatArray, tank_levels: FloatArray) -> None:
        """Advance speeds and compute flows from the tank levels at the start of the step."""
        run = (v[self.cmd_run] > 0.5) & ~self.tripped
        target = np.where(run, np.clip(v[self.cmd_speed], 0.0, 100.0), 0.0)
        speed = v[self.speed]
        speed = speed + np.clip(target - speed, -self.ramp * dt, self.ramp * dt)
        head = self.static_head + levels_at(self.to, tank_levels)
        n = speed / 100.0
        flow = self.max_flow * np.sqrt(np.maximum(n * n - head / self.shutoff_head, 0.0))
        dry = (self.source >= 0) & (levels_at(self.source, tank_levels) <= 0.0)
        flow = np.where(dry, 0.0, flow)
        turning = speed > 0.5
        v[self.speed] = speed
        v[self.running] = turning
        v[self.flow] = flow
        v[self.run_hours] += np.where(turning, dt / 3600.0, 0.0)

    def flows_into(self, n_tanks: int, v: FloatArray) -> FloatArray:
        return sum_by_tank(self.to, v[self.flow], n_tanks)

    def flows_out_of(self, n_tanks: int, v: FloatArray) -> FloatArray:
        return sum_by_tank(self.source, v[self.flow], n_tanks)
