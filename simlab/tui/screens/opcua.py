"""The OPC UA browser screen: tree, attributes, read, write, subscribe."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["OpcUaScreen"]


class OpcUaScreen(LabScreen):
    """tree, attributes, read, write, subscribe (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static(
            "OPC UA browser: tree, attributes, read, write, subscribe", classes="placeholder"
        )
