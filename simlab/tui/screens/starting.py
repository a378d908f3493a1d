"""The first paint: what lab is starting, or why it could not."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Footer, LoadingIndicator, Static

if TYPE_CHECKING:
    from simlab.tui.app import SimlabApp

__all__ = ["StartingScreen"]


class StartingScreen(Screen[None]):
    """Shown until the lab runs (the app switches to the first tool then)."""

    def compose(self) -> ComposeResult:
        app = cast("SimlabApp", self.app)
        plan = app.plan
        with Middle(), Center():
            title = Text.assemble(("simlab", "bold"), f" — {plan.scenario.title}")
            if plan.exercise is not None:
                title.append(f"\nexercise {plan.exercise.entry.id}: {plan.exercise.entry.title}")
            yield Static(title, id="starting-title")
            if app.lab_error is None:
                yield Static("starting the plant, PLCs, endpoints, bus and platform ...")
                yield LoadingIndicator()
            else:
                yield Static(Text(app.lab_error, style="bold red"), id="starting-error")
                yield Static("Press q to quit.")
        yield Footer()
