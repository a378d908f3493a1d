"""PLC scan lateness with the terminal UI open versus headless, on the default scenario.

The lab steps on a real-time clock; each step is due at ``(steps + 1) * dt`` lab seconds
and the PLCs scan on it. Lateness is how far behind that instant (in wall milliseconds)
the step runs: event-loop work of the UI, the endpoints, the bus and the platform delays
it. The benchmark runs the water-tank lab (endpoints, embedded broker, platform, gateway)
for ``--seconds`` with no UI, then with the UI open on some screens (Textual's headless
driver at 80×24: the app lays out and renders every refresh as in a terminal, without
writing to one) and prints p50, p99 and the worst lateness of each run.

Run: ``.venv/bin/python benchmarks/tui_scan_lateness.py [--seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np

from simlab.lab import Lab
from simlab.scenario import load_scenario
from simlab.tui import LabPlan, SimlabApp

SCREENS = {
    "plant": ("2",),
    "plant + lineage": ("2", "enter"),
    "modbus (polling)": ("4", "p"),
    "mqtt": ("5",),
}


def instrument(lab: Lab) -> list[float]:
    """Record each step's lateness (wall ms) from now on."""
    lateness: list[float] = []
    step = lab.step
    speed = getattr(lab.clock, "speed", 1.0)

    def timed_step() -> None:
        due = (lab.steps + 1) * lab.dt
        lateness.append((lab.clock.now() - due) / speed * 1000)
        step()

    lab.step = timed_step  # type: ignore[method-assign]
    return lateness


def plan(state: Path) -> LabPlan:
    scenario = load_scenario("water-tank")
    return LabPlan(scenario, auto_ports=True, broker="embedded", api_port=0, state_dir=state)


async def headless(seconds: float, state: Path) -> list[float]:
    async with plan(state).build() as lab:
        await asyncio.sleep(2.0)  # settle: the gateway's first polls, the platform's births
        lateness = instrument(lab)
        await asyncio.sleep(seconds)
        return lateness


async def with_ui(keys: tuple[str, ...], seconds: float, state: Path) -> list[float]:
    app = SimlabApp(plan(state))
    async with app.run_test(size=(80, 24)) as pilot:
        lab = await app.wait_ready()
        for key in keys:
            await pilot.press(key)
        await asyncio.sleep(2.0)
        lateness = instrument(lab)
        await asyncio.sleep(seconds)
        await pilot.press("q")
        return lateness


def report(name: str, lateness: list[float]) -> None:
    values = np.array(lateness)
    p50, p99 = np.percentile(values, [50, 99])
    print(
        f"  {name:20} {len(values):6d} steps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"worst {values.max():7.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    scenario = load_scenario("water-tank")
    print(
        f"water-tank, step {scenario.clock.step * 1000:g} ms, {args.seconds:g} s per run; "
        "lateness of each step behind its due instant:"
    )
    with tempfile.TemporaryDirectory() as state:
        report("headless", await headless(args.seconds, Path(state) / "headless"))
        for name, keys in SCREENS.items():
            report(f"UI: {name}", await with_ui(keys, args.seconds, Path(state) / name))


if __name__ == "__main__":
    asyncio.run(main())
