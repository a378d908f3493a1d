"""Step-time figures of the lab foundation (issue: lab foundation, item 8).

Prints, for this machine:
- plant-only and whole-lab (plant + sensors + devices + truth) step time of each bundled
  scenario;
- the step time of a synthetic plant of 10,000 signals (goal: < 1 ms);
- the wall time of one simulated hour of the bottling line on the virtual clock (goal: < 10 s).

Run: ``.venv/bin/python benchmarks/step_time.py``
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np

from devices.plant.plant import Plant
from simlab.lab import Lab
from simlab.scenario import bundled_scenarios, load_scenario
from simlab.scenario.plant import PlantSpec


def per_step_us(step: object, repeats: int) -> float:
    """Median over 5 rounds of the mean time of ``repeats`` calls, in µs."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            step()  # type: ignore[operator]
        rounds.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(rounds)


def synthetic_plant(tanks: int = 800, pumps: int = 500, valves: int = 1000) -> Plant:
    """Tanks (5 signals), pumps (6) and valves (3): 10,000 signals with the defaults."""
    units: list[dict[str, object]] = []
    units += [
        {"type": "tank", "name": f"t{i}", "area": 1.0, "height": 3.0, "initial_level": 1.0}
        for i in range(tanks)
    ]
    units += [
        {
            "type": "pump",
            "name": f"p{i}",
            "max_flow": 10.0,
            "shutoff_head": 8.0,
            "to": f"t{i % tanks}",
            "initial_run": True,
        }
        for i in range(pumps)
    ]
    units += [
        {
            "type": "valve",
            "name": f"v{i}",
            "tank": f"t{i % tanks}",
            "cv": 3.0,
            "initial_position": 50.0,
        }
        for i in range(valves)
    ]
    return Plant(PlantSpec.model_validate({"units": units}), np.random.default_rng(0))


async def bottling_hour() -> float:
    lab = Lab(load_scenario("bottling-line"))
    async with lab:
        start = time.perf_counter()
        await lab.run_for(3600.0)
        return time.perf_counter() - start


def main() -> None:
    print(f"{'scenario':16} {'signals':>8} {'plant µs/step':>14} {'lab µs/step':>12}")
    for name in bundled_scenarios():
        lab = Lab(load_scenario(name))
        plant_us = per_step_us(lambda lab=lab: lab.plant.step(lab.dt), 2000)
        lab_us = per_step_us(lab.step, 2000)
        print(f"{name:16} {len(lab.plant.signals):>8} {plant_us:>14.1f} {lab_us:>12.1f}")
    plant = synthetic_plant()
    us = per_step_us(lambda: plant.step(0.1), 2000)
    verdict = "ok" if us < 1000 else "TOO SLOW"
    print(
        f"synthetic plant: {len(plant.signals)} signals, {us:.0f} µs/step "
        f"(goal < 1000 µs: {verdict})"
    )
    seconds = asyncio.run(bottling_hour())
    verdict = "ok" if seconds < 10 else "TOO SLOW"
    print(f"bottling line: 1 simulated hour in {seconds:.2f} s wall (goal < 10 s: {verdict})")


if __name__ == "__main__":
    main()
