"""Fixtures of the terminal UI tests: an app on a virtual-clock lab on free ports.

A virtual clock stands still unless a test steps the lab, so what the screens show is a
pure function of scenario and seed: snapshots are deterministic. Text that differs between
runs for other reasons (ports, wall-clock times, rates) sits in widgets with the CSS class
``volatile``; :func:`blank_volatile` blanks them before a snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, Static

from simlab.scenario import load_scenario
from simlab.tui import LabPlan, SimlabApp

PlanFactory = Callable[..., LabPlan]


@pytest.fixture
def make_plan(tmp_path: Path) -> PlanFactory:
    """``make_plan("water-tank", instructor=True)``: a virtual-clock lab on free ports with
    the embedded broker and the platform API on a free port, state in ``tmp_path``."""

    def make(scenario: str = "water-tank", **options: Any) -> LabPlan:
        options.setdefault("virtual", True)
        options.setdefault("auto_ports", True)
        options.setdefault("broker", "embedded")
        options.setdefault("api_port", 0)
        options.setdefault("state_dir", tmp_path / "state")
        return LabPlan(load_scenario(scenario), **options)

    return make


@pytest.fixture
def app(make_plan: PlanFactory) -> SimlabApp:
    """The app on the default scenario (not yet running: ``async with app.run_test()``)."""
    return SimlabApp(make_plan())


async def until(
    pilot: Pilot[Any], condition: Callable[[], object], what: str = "the app", timeout: float = 20.0
) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what`` after ``timeout``
    wall seconds (generous: a loaded machine starts labs slowly)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def blank_volatile(app: SimlabApp) -> None:
    """Replace the text of every ``.volatile`` Static/Label of the shown screen by ``…``."""
    for widget in app.screen.query(".volatile"):
        if isinstance(widget, Static | Label):
            widget.update("…")
