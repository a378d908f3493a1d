"""Regenerate the screenshots under docs/: ``simlab up --headless`` and each screen of the UI.

Each UI screenshot runs the app on a real-time lab (free ports, the embedded broker) as an
apprentice would, presses the keys that stage the screen, lets the lab run a few seconds
and saves the terminal as SVG. The Exercises screen runs in a fresh workspace (apprentice
"ada") after a Check of the starter.

Run: ``.venv/bin/python scripts/make_screenshots.py [SCREEN...]`` (all by default).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot

from grading.workspace import default_course_root, init_workspace
from simlab.scenario import load_scenario
from simlab.tui import ExerciseContext, LabPlan, SimlabApp

DOCS = Path(__file__).resolve().parent.parent / "docs"
Stage = Callable[[Pilot[int]], Awaitable[None]]


def headless_up() -> None:
    """docs/simlab-up.svg: what ``simlab up --headless`` prints on the default scenario."""
    command = ["simlab", "up", "--headless", "--virtual", "--duration", "240", "--every", "40"]
    result = subprocess.run(
        [sys.executable, "-m", "simlab", *command[1:]],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "110", "FORCE_COLOR": "1", "PATH": ""},
    )
    console = Console(record=True, width=110, force_terminal=True, file=io.StringIO())
    console.print(Text("$ " + " ".join(command), style="bold"))
    console.print(Text.from_ansi(result.stdout))
    console.save_svg(str(DOCS / "simlab-up.svg"), title="simlab up --headless")


def keys(*pressed: str, settle: float = 4.0) -> Stage:
    """A stage that presses ``pressed`` in turn, then lets the lab run ``settle`` seconds."""

    async def stage(pilot: Pilot[int]) -> None:
        for key in pressed:
            await pilot.press(key)
            await pilot.pause(0.2)
        await asyncio.sleep(settle)

    return stage


async def inject_drift(pilot: Pilot[int]) -> None:
    await pilot.press("7")
    lab = pilot.app.lab if isinstance(pilot.app, SimlabApp) else None
    assert lab is not None
    lab.inject_fault({"kind": "drift", "target": "plc1.level", "rate": 0.01, "note": "demo"})
    await asyncio.sleep(3.0)


async def explore_sparkplug(pilot: Pilot[int]) -> None:
    await pilot.press("5")
    await asyncio.sleep(6.0)  # UNS values and Sparkplug DDATA flow
    await pilot.press("b")  # rebirth: the DDATA metrics get their names
    await asyncio.sleep(2.0)
    await pilot.press("slash", *"DDATA", "enter", "down")
    await asyncio.sleep(1.0)
    await pilot.press("slash", "end", "ctrl+u", "enter")  # filter off, the cursor on DDATA
    await asyncio.sleep(3.0)


async def acknowledge_alarm(pilot: Pilot[int]) -> None:
    await pilot.press("6")
    lab = pilot.app.lab if isinstance(pilot.app, SimlabApp) else None
    assert lab is not None
    lab.write("plc1.level_sp", 1.7)  # the level rises over its HI limit
    await asyncio.sleep(35.0)
    await pilot.press("tab", "tab", *"heater on its way", "enter")  # acknowledge the first
    await asyncio.sleep(1.5)
    await pilot.press("shift+tab")
    await asyncio.sleep(0.5)


TANK = "acme/riverside/utilities/water/buffer_tank/tank1"
RULES = f"""\
format_version: 1
alarms:
  - {{name: TANK1_LEVEL_HI, tag: {TANK}/level, kind: HI, limit: 1.4, deadband: 0.02,
     severity: 700, message: Buffer tank nearly full}}
  - {{name: TANK1_TEMP_LO, tag: {TANK}/temperature, kind: LO, limit: 25, deadband: 0.5,
     severity: 400, message: Water too cold}}
"""


@dataclass(frozen=True)
class Shot:
    """How to stage one screen: keys, terminal size, lab speed, platform rules."""

    stage: Stage
    size: tuple[int, int] = (80, 24)
    speed: float | None = None
    rules: str | None = None


SCREENS: dict[str, Shot] = {
    "plant": Shot(keys("2", "enter", settle=6.0), (100, 30)),
    "opcua": Shot(
        keys("3", *["down"] * 5, "space", *["down"] * 9, "space", "down", "s", "down", "s")
    ),
    "modbus": Shot(
        keys(
            "4",
            "shift+tab",
            "shift+tab",
            "shift+tab",
            "enter",
            "up",
            "enter",
            "escape",
            "down",
            "down",
            "p",
            settle=3.5,
        )
    ),
    "mqtt": Shot(explore_sparkplug, (100, 30)),
    "platform": Shot(acknowledge_alarm, (100, 30), speed=10.0, rules=RULES),
    "instructor": Shot(inject_drift),
}


async def screenshot(name: str, plan: LabPlan, stage: Stage, size: tuple[int, int]) -> None:
    app = SimlabApp(plan)
    async with app.run_test(size=size) as pilot:
        await app.wait_ready()
        await stage(pilot)
        app.save_screenshot(str(DOCS / f"tui-{name}.svg"))
        await pilot.press("q")
    print(f"docs/tui-{name}.svg")


async def exercises(folder: Path) -> None:
    workspace = init_workspace(
        folder / "ws", course_root=default_course_root(), apprentice="ada", secret="demo"
    )
    context = ExerciseContext.of(workspace, workspace.entries[0])
    plan = LabPlan.for_exercise(context, broker="embedded", api_port=0)
    await screenshot("exercises", plan, keys("c", settle=25.0), (100, 30))


async def main(names: list[str]) -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        if "up" in names:
            headless_up()
        if "exercises" in names:
            await exercises(Path(folder))
        for name, shot in SCREENS.items():
            if name not in names:
                continue
            state = Path(folder) / name
            state.mkdir()
            if shot.rules is not None:
                (state / "rules.yaml").write_text(shot.rules, encoding="utf-8")
            plan = LabPlan(
                load_scenario("water-tank"),
                speed=shot.speed,
                auto_ports=True,
                broker="embedded",
                api_port=0,
                state_dir=state,
                instructor=True,
            )
            await screenshot(name, plan, shot.stage, shot.size)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["up", "exercises", *SCREENS]))
