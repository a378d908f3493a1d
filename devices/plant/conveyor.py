"""Conveyors carrying discrete items past stations (presence sensors, filler, capper, inspection).

Items live in fixed-size arrays (position, fill volume, cap seated, fill target) with an
``active`` mask, so a step moves every item with one vector operation. Items enter at the
infeed at ``infeed_rate`` while the belt moves and the infeed is clear; a fill station draws
each item's volume from a normal distribution, a cap station seats caps except for a share
``failure_rate``, an inspection rejects items whose fill is off by more than ``tolerance`` or
whose cap is not seated. Random draws come from the generator handed in (seeded by the lab).
"""

from __future__ import annotations

import numpy as np

from devices.plant.signals import FloatArray, SignalTable
from simlab.scenario.plant import ConveyorSpec, StationSpec

__all__ = ["Conveyor"]


class Conveyor:
    """One conveyor and the items on it."""

    def __init__(self, spec: ConveyorSpec, table: SignalTable, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.jammed = False
        self.tripped = False
        capacity = spec.capacity
        self.active = np.zeros(capacity, dtype=bool)
        self.position = np.zeros(capacity)
        self.volume = np.full(capacity, np.nan)
        self.target = np.full(capacity, np.nan)
        self.capped = np.ones(capacity, dtype=bool)
        self.since_infeed = 60.0 / spec.infeed_rate  # first item enters at once
        self.stations = sorted(spec.stations, key=lambda s: s.position)
        for signal in spec.signals():
            table.add(spec.name, signal)
        index = table.index
        name = spec.name
        self.i_cmd_run = index[f"{name}.cmd_run"]
        self.i_running = index[f"{name}.running"]
        self.i_jammed = index[f"{name}.jammed"]
        self.i_speed = index[f"{name}.speed"]
        self.i_items_in = index[f"{name}.items_in"]
        self.i_items_out = index[f"{name}.items_out"]
        self.i_rejected = index[f"{name}.rejected"]
        self.i_on_belt = index[f"{name}.items_on_belt"]
        self.i_present = [index[f"{name}.{s.name}_present"] for s in self.stations]
        self.i_volume = {
            s.name: index[f"{name}.{s.name}_volume"] for s in self.stations if s.kind == "fill"
        }
        table.values[self.i_cmd_run] = spec.initial_run

    def step(self, dt: float, v: FloatArray) -> None:
        running = v[self.i_cmd_run] > 0.5 and not self.tripped
        moving = running and not self.jammed
        if moving:
            self._infeed(dt, v)
            before = self.position.copy()
            self.position[self.active] += self.spec.speed * dt
            for station in self.stations:
                self._pass(station, before, v)
            done = self.active & (self.position >= self.spec.length)
            v[self.i_items_out] += int(done.sum())
            self.active &= ~done
        half = self.spec.item_length / 2.0
        for station, i_present in zip(self.stations, self.i_present, strict=True):
            near = self.active & (np.abs(self.position - station.position) <= half)
            v[i_present] = bool(near.any())
        v[self.i_running] = running
        v[self.i_jammed] = self.jammed
        v[self.i_speed] = self.spec.speed if moving else 0.0
        v[self.i_on_belt] = int(self.active.sum())

    def _infeed(self, dt: float, v: FloatArray) -> None:
        self.since_infeed += dt
        if self.since_infeed < 60.0 / self.spec.infeed_rate:
            return
        clear = not (self.active & (self.position < self.spec.item_length)).any()
        free = np.flatnonzero(~self.active)
        if clear and free.size:
            slot = free[0]
            self.active[slot] = True
            self.position[slot] = 0.0
            self.volume[slot] = np.nan
            self.target[slot] = np.nan
            self.capped[slot] = True
            self.since_infeed = 0.0
            v[self.i_items_in] += 1

    def _pass(self, station: StationSpec, before: FloatArray, v: FloatArray) -> None:
        crossing = self.active & (before < station.position) & (self.position >= station.position)
        count = int(crossing.sum())
        if count == 0:
            return
        if station.kind == "fill":
            volumes = self.rng.normal(station.target, station.spread, count)
            self.volume[crossing] = volumes
            self.target[crossing] = station.target
            v[self.i_volume[station.name]] = volumes[-1]
        elif station.kind == "cap":
            self.capped[crossing] = self.rng.random(count) >= station.failure_rate
        elif station.kind == "inspect":
            error = np.abs(self.volume - self.target)
            bad = crossing & (~self.capped | (error > station.tolerance))
            v[self.i_rejected] += int(bad.sum())
            self.active &= ~bad
