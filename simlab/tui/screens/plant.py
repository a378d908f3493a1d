"""The Plant screen: live tags, a mimic of the process and a tag's lineage."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["PlantScreen"]


class PlantScreen(LabScreen):
    """live tags, a mimic of the process and a tag's lineage (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Plant: live tags, a mimic of the process and a tag's lineage", classes="placeholder"
        )
