"""The Platform screen: assets, history, alarms, OEE."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["PlatformScreen"]


class PlatformScreen(LabScreen):
    """assets, history, alarms, OEE (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static("Platform: assets, history, alarms, OEE", classes="placeholder")
