"""The Instructor screen: inject and clear faults live."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["InstructorScreen"]


class InstructorScreen(LabScreen):
    """inject and clear faults live (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static("Instructor: inject and clear faults live", classes="placeholder")
