"""The Exercises screen: the ordered list, the brief, Check and hints."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["ExercisesScreen"]


class ExercisesScreen(LabScreen):
    """the ordered list, the brief, Check and hints (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Exercises: the ordered list, the brief, Check and hints", classes="placeholder"
        )
