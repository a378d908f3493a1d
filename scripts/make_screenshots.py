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


SCREENS: dict[str, tuple[Stage, tuple[int, int]]] = {
    "plant": (keys("2", "enter", settle=6.0), (100, 30)),
    "opcua": (
        keys(
            "3",
            *["down"] * 5,
            "space",
            *["down"] * 9,
            "space",
            "down",
            "s",
            "down",
            "s",
            settle=4.0,
        ),
        (80, 24),
    ),
    "modbus": (
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
        ),
        (80, 24),
    ),
    "mqtt": (keys("5", settle=6.0), (100, 30)),
    "platform": (keys("6", settle=6.0), (100, 30)),
    "instructor": (inject_drift, (80, 24)),
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
        for name, (stage, size) in SCREENS.items():
            if name in names:
                plan = LabPlan(
                    load_scenario("water-tank"),
                    auto_ports=True,
                    broker="embedded",
                    api_port=0,
                    state_dir=Path(folder) / name,
                    instructor=True,
                )
                await screenshot(name, plan, stage, size)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["up", "exercises", *SCREENS]))
